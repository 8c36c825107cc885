#include "model/predictor.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace activeflow {

namespace {

// attn_in / attn_out -> 0, ffn_in / ffn_out -> 1.
int Pair(int site) { return site == kAttnIn || site == kAttnOut ? 0 : 1; }

}  // namespace

void Predictor::configure(int n_layer, int n_embd, int q_width, int n_ff, float rms_eps, std::vector<const float*> attn_norm,
                          std::vector<const float*> ffn_norm, const std::vector<float>* thresholds) {
  n_layer_ = n_layer;
  n_embd_ = n_embd;
  q_width_ = q_width;
  n_ff_ = n_ff;
  off_width_ = std::max(q_width, n_ff);
  rms_eps_ = rms_eps;
  attn_norm_ = std::move(attn_norm);
  ffn_norm_ = std::move(ffn_norm);
  thresholds_ = thresholds;
  score_.assign(static_cast<size_t>(n_embd), 0.0f);
  last_active_.assign(static_cast<size_t>(n_layer) * 2 * off_width_, 0);
  last_valid_.assign(static_cast<size_t>(n_layer) * 2, 0);
  pred_bits_.assign(static_cast<size_t>(n_layer) * (kMaxPredictDistance + 1) * 2 * n_embd, 0);
  pred_token_.assign(static_cast<size_t>(n_layer) * (kMaxPredictDistance + 1), 0);
  half_token_.assign(static_cast<size_t>(n_layer) * 2, 0);
  layer_counts_.assign(static_cast<size_t>(n_layer) * kSites * (kMaxPredictDistance + 1) * 3, 0);
}

void Predictor::set_column_norms(const float* norms, size_t layer_channels, size_t ffn_offset) {
  if (!norms) {
    folded_.clear();
    return;
  }
  // Folded once: the score's per-channel factor is then one array, as without column norms.
  folded_.assign(static_cast<size_t>(n_layer_) * 2 * n_embd_, 0.0f);
  for (int l = 0; l < n_layer_; l++) {
    const float* col = norms + static_cast<size_t>(l) * layer_channels;
    float* a = folded_.data() + static_cast<size_t>(l) * 2 * n_embd_;
    float* f = a + n_embd_;
    for (int j = 0; j < n_embd_; j++) {
      a[j] = attn_norm_[l][j] * col[j];
      f[j] = ffn_norm_[l][j] * col[ffn_offset + j];
    }
  }
}

void Predictor::reset_counts() {
  counts_ = PredictCounts();
  std::fill(layer_counts_.begin(), layer_counts_.end(), 0);
}

void Predictor::set_residual(const float* x, int n) {
  x_ = x;
  rows_ = n;
  inv_rms_.resize(static_cast<size_t>(n));
  for (int t = 0; t < n; t++) {
    const float* r = x + static_cast<size_t>(t) * n_embd_;
    double ss = 0;
    for (int j = 0; j < n_embd_; j++) ss += static_cast<double>(r[j]) * r[j];
    inv_rms_[t] = static_cast<float>(1.0 / std::sqrt(ss / n_embd_ + rms_eps_));
  }
}

const float* Predictor::scores(int layer, int site) {
  const float* x = x_;
  const int n = rows_;
  const float* norm = !folded_.empty() ? folded_.data() + (static_cast<size_t>(layer) * 2 + Pair(site)) * n_embd_
                                        : site == kAttnIn ? attn_norm_[layer] : ffn_norm_[layer];
  const float thr = thresholds_->empty() ? -1.0f : (*thresholds_)[static_cast<size_t>(layer) * kSites + site];
  float* score = score_.data();
  if (thr <= 0.0f) {
    // Level 0 (or dense): every channel is active.
    std::fill(score, score + n_embd_, std::numeric_limits<float>::max());
    return score;
  }
  const float inv_thr = 1.0f / thr;
  std::fill(score, score + n_embd_, 0.0f);
  for (int t = 0; t < n; t++) {
    const float* r = x + static_cast<size_t>(t) * n_embd_;
    const float k = inv_rms_[t] * inv_thr;
    for (int j = 0; j < n_embd_; j++) score[j] = std::max(score[j], std::fabs(r[j] * norm[j]) * k);
  }
  return score;
}

std::vector<Predictor::Candidate>& Predictor::group_candidates(int first, int last, const float* x, int n, float margin) {
  cands_.clear();
  best_.resize(static_cast<size_t>(n_embd_));
  set_residual(x, n);
  // Residual-fed sites: the best score over the group's layers.
  for (int site : {kAttnIn, kFfnIn}) {
    std::fill(best_.begin(), best_.end(), 0.0f);
    for (int l = first; l < last; l++) {
      const float* s = scores(l, site);
      for (int j = 0; j < n_embd_; j++) best_[j] = std::max(best_[j], s[j]);
    }
    for (int j = 0; j < n_embd_; j++) {
      if (best_[j] > margin) cands_.push_back({best_[j], site, j});
    }
  }
  // o and down: what the group's layers used for the previous token (score just above the
  // margin: after the strongly predicted residual channels, before the borderline ones).
  const int widths[2] = {q_width_, n_ff_};
  std::vector<uint8_t> any_active;
  for (int site : {kAttnOut, kFfnOut}) {
    const int p = Pair(site), W = widths[p];
    any_active.assign(static_cast<size_t>(W), 0);
    bool any = false;
    for (int l = first; l < last; l++) {
      if (!last_valid_[static_cast<size_t>(l) * 2 + p]) continue;
      any = true;
      const uint8_t* bits = last_active_.data() + (static_cast<size_t>(l) * 2 + p) * off_width_;
      for (int j = 0; j < W; j++) any_active[j] |= bits[j];
    }
    if (!any) continue;
    for (int j = 0; j < W; j++) {
      if (any_active[j]) cands_.push_back({margin + 1e-3f, site, j});
    }
  }
  return cands_;
}

// Marks the channels of (target, site) whose score exceeds the margin as predicted at
// distance d during this token (d = 0: one sub-block ahead).
void Predictor::record(int target, int site, int d, float margin) {
  uint8_t* bits = pred_bits_.data() + ((static_cast<size_t>(target) * (kMaxPredictDistance + 1) + d) * 2 + Pair(site)) * n_embd_;
  for (int j = 0; j < n_embd_; j++) bits[j] = score_[j] > margin;
  if (d == 0) half_token_[static_cast<size_t>(target) * 2 + Pair(site)] = token_serial_;
  else pred_token_[static_cast<size_t>(target) * (kMaxPredictDistance + 1) + d] = token_serial_;
}

void Predictor::probe(int layer, const float* x, float margin) {
  set_residual(x, 1);
  scores(layer, kFfnIn);
  record(layer, kFfnIn, 0, margin);
  for (int d = 1; d <= kMaxPredictDistance && layer + d < n_layer_; d++) {
    for (int site : {kAttnIn, kFfnIn}) {
      scores(layer + d, site);
      record(layer + d, site, d, margin);
    }
  }
}

void Predictor::probe_half(int target, const float* x, float margin) {
  if (target >= n_layer_) return;
  set_residual(x, 1);
  scores(target, kAttnIn);
  record(target, kAttnIn, 0, margin);
}

void Predictor::observe(int layer, int site, const float* x, int64_t n_in) {
  const int p = Pair(site);
  if (site == kAttnIn || site == kFfnIn) {
    for (int d = 0; d <= kMaxPredictDistance && layer - d >= 0; d++) {
      if (d == 0 ? half_token_[static_cast<size_t>(layer) * 2 + p] != token_serial_
                 : pred_token_[static_cast<size_t>(layer) * (kMaxPredictDistance + 1) + d] != token_serial_) continue;
      const uint8_t* bits = pred_bits_.data() + ((static_cast<size_t>(layer) * (kMaxPredictDistance + 1) + d) * 2 + p) * n_embd_;
      count(layer, site, d, x, bits, n_in);
    }
    return;
  }
  uint8_t* bits = last_active_.data() + (static_cast<size_t>(layer) * 2 + p) * off_width_;
  uint8_t& valid = last_valid_[static_cast<size_t>(layer) * 2 + p];
  if (valid) count(layer, site, 1, x, bits, n_in);
  for (int64_t j = 0; j < n_in; j++) bits[j] = x[j] != 0.0f;
  valid = 1;
}

void Predictor::remember(int layer, int site, const float* last_row, int64_t n_in) {
  const int p = Pair(site);
  uint8_t* bits = last_active_.data() + (static_cast<size_t>(layer) * 2 + p) * off_width_;
  for (int64_t j = 0; j < n_in; j++) bits[j] = last_row[j] != 0.0f;
  last_valid_[static_cast<size_t>(layer) * 2 + p] = 1;
}

// Compares the real active set (x nonzero) with a predicted one and adds to the counters.
void Predictor::count(int layer, int site, int d, const float* x, const uint8_t* predicted, int64_t n_in) {
  uint64_t tp = 0, fp = 0, fn = 0;
  for (int64_t j = 0; j < n_in; j++) {
    const bool act = x[j] != 0.0f, pred = predicted[j] != 0;
    tp += act && pred;
    fp += !act && pred;
    fn += act && !pred;
  }
  counts_.tp[site][d] += tp;
  counts_.fp[site][d] += fp;
  counts_.fn[site][d] += fn;
  uint64_t* c = layer_counts_.data() + ((static_cast<size_t>(layer) * kSites + site) * (kMaxPredictDistance + 1) + d) * 3;
  c[0] += tp;
  c[1] += fp;
  c[2] += fn;
}

}  // namespace activeflow
