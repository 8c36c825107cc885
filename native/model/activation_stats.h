// What the inputs of the linear layers looked like while evaluating, apart from the forward
// pass that produces them: |x| histograms (calibration picks thresholds from their quantiles),
// how often each input channel was active, and optionally a trace of the active sets, row by
// row, for studying caches and layouts offline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/site.h"

namespace activeflow {

// Score histogram (|x|, or |x| * column norm) for calibration: log2-spaced, kHistPerOctave bins per octave from 2^kHistMinLog2;
// bin 0 also holds exact zeros and everything below the range.
constexpr int kHistPerOctave = 32;
constexpr int kHistMinLog2 = -24;
constexpr int kHistBins = kHistPerOctave * 40;

class ActivationStats {
 public:
  // widths[site]: input channels of that site in every layer.
  void configure(int n_layer, const int64_t* widths);

  // What observe() gathers. Turning histograms on allocates them (zeros) the first time.
  void set_histograms(bool on);
  void set_counts(bool on);
  void set_trace(bool on);
  bool any() const { return hist_on_ || counts_on_ || trace_on_; }

  // n rows (stride floats apart) of one site's input, before thresholding. A channel's score is
  // |x| (scale == nullptr, magnitude selection) or |x| * scale[j] (scale: [n_in] weight column
  // norms, weight-aware selection); histograms hold scores, and a channel is active in a row
  // when its score > threshold; a negative threshold (the dense model) makes every channel
  // active. The first site of layer 0 starts a new pass of n rows.
  void observe(int layer, int site, const float* x, int n, int64_t n_in, size_t stride, float threshold,
               const float* scale = nullptr);

  const std::vector<uint64_t>& histograms() const { return hist_; }  // [n_layer][kSites][kHistBins]
  void clear_histograms();

  // Rows in which each channel was active: [n_layer][site][widths[site]], sites in order.
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t count_rows() const { return count_rows_; }
  void clear_counts();

  // Trace rows are [n_layer][site][ceil(widths[site] / 8)] bytes, bit j of a site's bytes
  // (LSB first) = channel j active. Moves the rows traced so far out, with the rows of each
  // pass (a pass is one evaluation chunk: the engine's prefill chunks or one decode token).
  std::vector<uint8_t> take_trace(std::vector<int32_t>* passes);
  size_t trace_row_bytes() const { return row_bytes_; }
  int64_t width(int site) const { return widths_[site]; }
  int n_layer() const { return n_layer_; }

 private:
  int n_layer_ = 0;
  int64_t widths_[kSites] = {0, 0, 0, 0};
  size_t count_offset_[kSites] = {0, 0, 0, 0};  // channel offset of each site inside a layer
  size_t layer_channels_ = 0;                   // sum of widths
  size_t bit_offset_[kSites] = {0, 0, 0, 0};    // byte offset of each site inside a layer's trace
  size_t layer_bytes_ = 0;
  size_t row_bytes_ = 0;
  bool hist_on_ = false;
  bool counts_on_ = false;
  bool trace_on_ = false;
  std::vector<uint64_t> hist_;
  std::vector<uint64_t> counts_;
  uint64_t count_rows_ = 0;
  std::vector<uint8_t> trace_;       // [rows][row_bytes_]
  std::vector<int32_t> passes_;      // rows per pass
  size_t pass_start_ = 0;            // first trace row of the current pass
  bool pass_open_ = false;           // the current pass was traced from its first site
};

}  // namespace activeflow
