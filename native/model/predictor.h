// Cross-layer prediction of active channels (PAPER.md, Technique 1) and its bookkeeping.
// The inputs of q/k/v and gate/up are RMSNorm(residual) x norm weight; the residual stream
// changes little from layer to layer, so a later layer's norm weight and threshold applied to
// the current residual predict that layer's active channels. The inputs of o and down are not
// on the residual stream: they are predicted by the same layer's set for the previous token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/site.h"

namespace activeflow {

// How well active sets were predicted, decode tokens only: counts per [site][distance].
// attn_in / ffn_in: predicted from the residual stream d layers earlier. attn_out / ffn_out:
// d = 1 is the same layer's active set of the previous token. Distance 0: one sub-block ahead
// (see Predictor::probe_half).
constexpr int kMaxPredictDistance = 4;
struct PredictCounts {
  uint64_t tp[kSites][kMaxPredictDistance + 1] = {};
  uint64_t fp[kSites][kMaxPredictDistance + 1] = {};
  uint64_t fn[kSites][kMaxPredictDistance + 1] = {};
};

class Predictor {
 public:
  using Candidate = ChannelScore;
  // attn_norm / ffn_norm: [n_layer] pointers to [n_embd] f32 norm weights. off_width: width of
  // the o and down inputs (max of q width and n_ff). thresholds: [n_layer][kSites], empty = dense.
  void configure(int n_layer, int n_embd, int q_width, int n_ff, float rms_eps, std::vector<const float*> attn_norm,
                 std::vector<const float*> ffn_norm, const std::vector<float>* thresholds);

  // Weight-aware selection: scores use |rmsnorm(x)_j * norm_j| * col_j, col the site's column
  // norms. norms: the model's [n_layer][layer_channels] array (attn_in's norms at offset 0 of a
  // layer, ffn_in's at ffn_offset), kept alive by the model; nullptr = magnitude selection.
  void set_column_norms(const float* norms, size_t layer_channels, size_t ffn_offset);

  // A new token's pass begins (predictions are matched within one token).
  void begin_token() { token_serial_++; }

  // The residual rows x [n][n_embd] the next scores() predict from (their RMS, computed once).
  void set_residual(const float* x, int n);
  // Scores [n_embd] of (layer, site) (attn_in or ffn_in) from the residual: the max over rows
  // of |rmsnorm(x)_j * norm_j| (times the column norm when weight-aware) / threshold; > 1 means predicted active (exact when the
  // residual does not change before `layer`). Valid until the next call.
  const float* scores(int layer, int site);

  // Candidates of group [first, last): the best residual score over the group's layers for
  // attn_in / ffn_in above `margin`, and o / down from the previous token's sets.
  std::vector<Candidate>& group_candidates(int first, int last, const float* x, int n, float margin);

  // Decode probes: from the residual at the start of `layer`, ffn_in of this layer one
  // sub-block ahead and attn_in / ffn_in of the next kMaxPredictDistance layers.
  void probe(int layer, const float* x, float margin);
  // attn_in of `target` one sub-block ahead: from the residual after the previous attention.
  void probe_half(int target, const float* x, float margin);
  // A decode token's thresholded input of (layer, site): counts the predictions made for it and,
  // for o / down, remembers the set for the next token.
  void observe(int layer, int site, const float* x, int64_t n_in);
  // A prefill pass: the last row's o / down sets are what the next token's prediction uses.
  void remember(int layer, int site, const float* last_row, int64_t n_in);

  const PredictCounts& counts() const { return counts_; }
  // [n_layer][kSites][kMaxPredictDistance + 1][tp, fp, fn]
  const std::vector<uint64_t>& layer_counts() const { return layer_counts_; }
  void reset_counts();

 private:

  void record(int target, int site, int d, float margin);
  void count(int layer, int site, int d, const float* x, const uint8_t* predicted, int64_t n_in);

  int n_layer_ = 0, n_embd_ = 0, off_width_ = 0, q_width_ = 0, n_ff_ = 0;
  float rms_eps_ = 1e-5f;
  std::vector<const float*> attn_norm_, ffn_norm_;  // [n_layer] -> [n_embd]
  // [n_layer][2][n_embd] norm weight x column norm of attn_in / ffn_in; empty = magnitude
  std::vector<float> folded_;
  const std::vector<float>* thresholds_ = nullptr;  // [n_layer][kSites]
  const float* x_ = nullptr;                         // [rows][n_embd] the residual predicted from
  int rows_ = 0;
  std::vector<float> inv_rms_;                       // [rows] 1 / rms of the residual rows
  std::vector<float> score_;                         // [n_embd]
  std::vector<float> best_;                          // [n_embd] best score over a group's layers
  std::vector<Candidate> cands_;
  std::vector<uint8_t> last_active_;  // [n_layer][2][off_width] previous token's o / down sets
  std::vector<uint8_t> last_valid_;   // [n_layer][2]
  std::vector<uint8_t> pred_bits_;    // [n_layer][distance][2][n_embd] predicted attn_in / ffn_in sets
  std::vector<uint64_t> pred_token_;  // [n_layer][distance] token the prediction was made in
  std::vector<uint64_t> half_token_;  // [n_layer][2] distance-0 predictions
  uint64_t token_serial_ = 0;
  PredictCounts counts_;
  std::vector<uint64_t> layer_counts_;
};

}  // namespace activeflow
