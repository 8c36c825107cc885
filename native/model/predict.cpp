// Cross-layer prediction of active channels (PAPER.md, Technique 1) and its bookkeeping.
// The inputs of q/k/v and gate/up are RMSNorm(residual) x norm weight; the residual stream
// changes little from layer to layer, so applying a later layer's norm weight and threshold
// to the current residual predicts that layer's active channels. The inputs of o and down are
// not on the residual stream: they are predicted by the same layer's set for the previous token.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "model/model.h"

namespace activeflow {

namespace {

// attn_in / ffn_in -> 0 / 1, attn_out / ffn_out -> 0 / 1.
int Pair(int site) { return site == kAttnIn || site == kAttnOut ? 0 : 1; }

}  // namespace

void Model::residual_inv_rms(const float* x, int n) {
  const int E = cfg_.n_embd;
  inv_rms_.resize(n);
  for (int t = 0; t < n; t++) {
    const float* r = x + static_cast<size_t>(t) * E;
    double ss = 0;
    for (int j = 0; j < E; j++) ss += static_cast<double>(r[j]) * r[j];
    inv_rms_[t] = static_cast<float>(1.0 / std::sqrt(ss / E + cfg_.rms_eps));
  }
}

void Model::predict_scores(int layer, int site, const float* x, int n, float* score) {
  const int E = cfg_.n_embd;
  const LayerWeights& L = w_.layers[layer];
  const float* norm = reinterpret_cast<const float*>((site == kAttnIn ? L.attn_norm : L.ffn_norm).data);
  const float thr = thresholds_.empty() ? -1.0f : thresholds_[static_cast<size_t>(layer) * kSites + site];
  if (thr <= 0.0f) {
    // Level 0 (or dense): every channel is active.
    std::fill(score, score + E, std::numeric_limits<float>::max());
    return;
  }
  const float inv_thr = 1.0f / thr;
  std::fill(score, score + E, 0.0f);
  for (int t = 0; t < n; t++) {
    const float* r = x + static_cast<size_t>(t) * E;
    const float k = inv_rms_[t] * inv_thr;
    for (int j = 0; j < E; j++) score[j] = std::max(score[j], std::fabs(r[j] * norm[j]) * k);
  }
}

void Model::preload_group(int group, const float* x, int n) {
  const int G = store_->group_size();
  const int first = group * G, last = std::min(cfg_.n_layer, first + G);
  if (first >= cfg_.n_layer) return;
  const float margin = flash_->predict_margin;
  cands_.clear();
  const int E = cfg_.n_embd;
  // Residual-fed sites: the best score over the group's layers.
  residual_inv_rms(x, n);
  std::vector<float>& best = best_;
  best.resize(E);
  for (int site : {kAttnIn, kFfnIn}) {
    std::fill(best.begin(), best.end(), 0.0f);
    for (int l = first; l < last; l++) {
      predict_scores(l, site, x, n, score_.data());
      for (int j = 0; j < E; j++) best[j] = std::max(best[j], score_[j]);
    }
    for (int j = 0; j < E; j++) {
      if (best[j] > margin) cands_.push_back({best[j], site, j});
    }
  }
  // o and down: what the group's layers used for the previous token (score 1: after the
  // strongly predicted residual channels, before the borderline ones).
  const int widths[2] = {cfg_.n_head * cfg_.head_dim, cfg_.n_ff};
  const int wide = std::max(widths[0], widths[1]);
  for (int site : {kAttnOut, kFfnOut}) {
    const int p = Pair(site), W = widths[p];
    std::fill(score_.begin(), score_.begin() + W, 0.0f);
    bool any = false;
    for (int l = first; l < last; l++) {
      if (!last_valid_[static_cast<size_t>(l) * 2 + p]) continue;
      any = true;
      const uint8_t* bits = last_active_.data() + (static_cast<size_t>(l) * 2 + p) * wide;
      for (int j = 0; j < W; j++) score_[j] = std::max(score_[j], static_cast<float>(bits[j]));
    }
    if (!any) continue;
    for (int j = 0; j < W; j++) {
      if (score_[j] > 0.0f) cands_.push_back({margin + 1e-3f, site, j});
    }
  }
  store_->preload(group, cands_);
}

void Model::prefetch_site(int layer, int site, const float* x, int n) {
  residual_inv_rms(x, n);
  predict_scores(layer, site, x, n, score_.data());
  store_->prefetch_site(layer, site, score_.data(), flash_->predict_margin);
}

// Marks the channels of (target, site) whose score_ exceeds the margin as predicted at
// distance d during this token (d = 0: one sub-block ahead).
void Model::record_prediction(int target, int site, int d) {
  const int E = cfg_.n_embd;
  uint8_t* bits = pred_bits_.data() + ((static_cast<size_t>(target) * (kMaxPredictDistance + 1) + d) * 2 + Pair(site)) * E;
  for (int j = 0; j < E; j++) bits[j] = score_[j] > flash_->predict_margin;
  if (d == 0) half_token_[static_cast<size_t>(target) * 2 + Pair(site)] = token_serial_;
  else pred_token_[static_cast<size_t>(target) * (kMaxPredictDistance + 1) + d] = token_serial_;
}

// From the residual at the start of `layer`: ffn_in of this layer one sub-block ahead, and
// attn_in / ffn_in of the next kMaxPredictDistance layers.
void Model::probe_predictions(int layer, const float* x) {
  residual_inv_rms(x, 1);
  predict_scores(layer, kFfnIn, x, 1, score_.data());
  record_prediction(layer, kFfnIn, 0);
  for (int d = 1; d <= kMaxPredictDistance && layer + d < cfg_.n_layer; d++) {
    for (int site : {kAttnIn, kFfnIn}) {
      predict_scores(layer + d, site, x, 1, score_.data());
      record_prediction(layer + d, site, d);
    }
  }
}

// attn_in of `target` one sub-block ahead: from the residual after the previous layer's attention.
void Model::probe_half(int target, const float* x) {
  if (target >= cfg_.n_layer) return;
  residual_inv_rms(x, 1);
  predict_scores(target, kAttnIn, x, 1, score_.data());
  record_prediction(target, kAttnIn, 0);
}

// Called with a decode token's thresholded input of (layer, site).
void Model::score_active(int layer, int site, const float* x, int64_t n_in) {
  const int p = Pair(site);
  if (site == kAttnIn || site == kFfnIn) {
    for (int d = 0; d <= kMaxPredictDistance && layer - d >= 0; d++) {
      if (d == 0 ? half_token_[static_cast<size_t>(layer) * 2 + p] != token_serial_
                 : pred_token_[static_cast<size_t>(layer) * (kMaxPredictDistance + 1) + d] != token_serial_) continue;
      const uint8_t* bits = pred_bits_.data() +
                            ((static_cast<size_t>(layer) * (kMaxPredictDistance + 1) + d) * 2 + p) * cfg_.n_embd;
      count_prediction(layer, site, d, x, bits, n_in);
    }
    return;
  }
  const int wide = std::max(cfg_.n_head * cfg_.head_dim, cfg_.n_ff);
  uint8_t* bits = last_active_.data() + (static_cast<size_t>(layer) * 2 + p) * wide;
  uint8_t& valid = last_valid_[static_cast<size_t>(layer) * 2 + p];
  if (valid) count_prediction(layer, site, 1, x, bits, n_in);
  for (int64_t j = 0; j < n_in; j++) bits[j] = x[j] != 0.0f;
  valid = 1;
}

// Compares the real active set (x nonzero) with a predicted one and adds to the counters.
void Model::count_prediction(int layer, int site, int d, const float* x, const uint8_t* predicted, int64_t n_in) {
  uint64_t tp = 0, fp = 0, fn = 0;
  for (int64_t j = 0; j < n_in; j++) {
    const bool act = x[j] != 0.0f, pred = predicted[j] != 0;
    tp += act && pred;
    fp += !act && pred;
    fn += act && !pred;
  }
  predict_.tp[site][d] += tp;
  predict_.fp[site][d] += fp;
  predict_.fn[site][d] += fn;
  if (predict_layer_.empty()) predict_layer_.assign(static_cast<size_t>(cfg_.n_layer) * kSites * (kMaxPredictDistance + 1) * 3, 0);
  uint64_t* c = predict_layer_.data() + ((static_cast<size_t>(layer) * kSites + site) * (kMaxPredictDistance + 1) + d) * 3;
  c[0] += tp;
  c[1] += fp;
  c[2] += fn;
}

}  // namespace activeflow
