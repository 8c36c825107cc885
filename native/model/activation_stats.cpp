#include "model/activation_stats.h"

#include <algorithm>
#include <cmath>

namespace activeflow {

void ActivationStats::configure(int n_layer, const int64_t* widths) {
  n_layer_ = n_layer;
  layer_channels_ = layer_bytes_ = 0;
  for (int s = 0; s < kSites; s++) {
    widths_[s] = widths[s];
    count_offset_[s] = layer_channels_;
    layer_channels_ += static_cast<size_t>(widths[s]);
    bit_offset_[s] = layer_bytes_;
    layer_bytes_ += static_cast<size_t>((widths[s] + 7) / 8);
  }
  row_bytes_ = layer_bytes_ * static_cast<size_t>(n_layer);
}

void ActivationStats::set_histograms(bool on) {
  hist_on_ = on;
  if (on && hist_.empty()) hist_.assign(static_cast<size_t>(n_layer_) * kSites * kHistBins, 0);
}

void ActivationStats::set_counts(bool on) {
  counts_on_ = on;
  if (on && counts_.empty()) counts_.assign(static_cast<size_t>(n_layer_) * layer_channels_, 0);
}

void ActivationStats::set_trace(bool on) {
  trace_on_ = on;
  pass_open_ = false;  // the next pass starts at its first site
}

void ActivationStats::clear_histograms() { std::fill(hist_.begin(), hist_.end(), 0); }

void ActivationStats::clear_counts() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_rows_ = 0;
}

std::vector<uint8_t> ActivationStats::take_trace(std::vector<int32_t>* passes) {
  std::vector<uint8_t> out;
  out.swap(trace_);
  passes->swap(passes_);
  passes_.clear();
  pass_start_ = 0;
  return out;
}

void ActivationStats::observe(int layer, int site, const float* x, int n, int64_t n_in, size_t stride,
                              float threshold, const float* scale) {
  auto score = [scale](const float* row, int64_t i) { return scale ? std::fabs(row[i]) * scale[i] : std::fabs(row[i]); };
  if (hist_on_) {
    uint64_t* h = hist_.data() + (static_cast<size_t>(layer) * kSites + site) * kHistBins;
    for (int t = 0; t < n; t++) {
      const float* row = x + t * stride;
      for (int64_t i = 0; i < n_in; i++) {
        const float a = score(row, i);
        int bin = 0;
        if (a > 0.0f) {
          bin = static_cast<int>(std::floor((std::log2(a) - kHistMinLog2) * kHistPerOctave));
          bin = std::min(std::max(bin, 0), kHistBins - 1);
        }
        h[bin]++;
      }
    }
  }
  const bool first = layer == 0 && site == kAttnIn;
  if (counts_on_) {
    if (first) count_rows_ += static_cast<uint64_t>(n);
    uint64_t* c = counts_.data() + static_cast<size_t>(layer) * layer_channels_ + count_offset_[site];
    for (int t = 0; t < n; t++) {
      const float* row = x + t * stride;
      for (int64_t i = 0; i < n_in; i++) c[i] += score(row, i) > threshold;
    }
  }
  if (trace_on_) {
    if (first) {
      pass_start_ = trace_.size() / row_bytes_;
      trace_.resize(trace_.size() + static_cast<size_t>(n) * row_bytes_, 0);
      passes_.push_back(n);
    }
    if (first) pass_open_ = true;
    if (!pass_open_) return;
    for (int t = 0; t < n; t++) {
      const float* row = x + t * stride;
      uint8_t* bits = trace_.data() + (pass_start_ + t) * row_bytes_ + static_cast<size_t>(layer) * layer_bytes_ + bit_offset_[site];
      for (int64_t i = 0; i < n_in; i++) {
        if (score(row, i) > threshold) bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
      }
    }
  }
}

}  // namespace activeflow
