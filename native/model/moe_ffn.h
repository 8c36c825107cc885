// The mixture-of-experts FFN (Mixtral, Qwen3-MoE, Qwen2-MoE), dense: every expert in DRAM.
// A router picks the top-k experts per token and weights them as llama.cpp does (softmax over
// all experts, top-k, optionally renormalised); tokens are grouped by expert so each expert's
// rows are multiplied once for all the tokens routed to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/expert_store.h"
#include "model/threadpool.h"
#include "model/weights.h"

namespace activeflow {

// Most experts per layer we route over: llama.cpp's LLAMA_MAX_EXPERTS.
constexpr int kMaxExperts = 1024;

struct MoeConfig {
  int n_expert = 0;       // experts per layer; 0 = a dense FFN
  int n_expert_used = 0;  // top-k
  int n_ff_exp = 0;       // hidden width of one expert
  bool norm_weights = true;  // divide the selected probabilities by their sum
  int n_ff_shexp = 0;     // qwen2moe shared expert's hidden width; 0 = none
};

// Softmax of n_expert router logits, the top k (descending probability; the lower index wins
// a tie) and their weights, renormalised when `norm`: llama.cpp's build_moe_ffn for the
// softmax gating. logits is overwritten with the probabilities.
void RouteTopK(float* logits, int n_expert, int k, bool norm, int32_t* experts, float* weights);

class MoeFfn {
 public:
  // layers outlives this; n_batch is the most tokens one forward call passes. cfg is checked
  // by the caller (Model): 1 <= n_expert_used <= n_expert <= kMaxExperts.
  MoeFfn(const MoeConfig& cfg, int n_embd, int n_batch, const std::vector<LayerWeights>& layers);
  // x[t] += MoE FFN of xn[t] for t in [0, n); xn and x are [n][n_embd]. x is the residual
  // stream before this FFN: with a store, pre-gating predicts the next layer's experts from it.
  void forward(int layer, const float* xn, int n, float* x, ThreadPool& pool);
  size_t scratch_bytes() const;
  // Flash mode: the experts come from `store` (whole experts, read on demand or ahead);
  // pre-gating applies the next layer's router to the residual stream and reads its experts
  // in the background while this layer computes. eps: the model's RMSNorm epsilon.
  void set_store(ExpertStore* store, float eps, bool pregate);

 private:
  void shared_expert(const ExpertWeights& m, const float* xn, int n, ThreadPool& pool);
  void route(const ExpertWeights& m, const float* xn, int n, ThreadPool& pool);
  void combine(int n, float* x);
  void forward_flash(int layer, const float* xn, int n, float* x, ThreadPool& pool);
  // Predicts layer + 1's experts from the residual rows x and starts reading them.
  void pregate(int layer, const float* x, int n, ThreadPool& pool);
  // Counts the prediction made for `layer` against its routing (sel_).
  void score_prediction(int layer, int n);

  MoeConfig cfg_;
  int n_embd_;
  const std::vector<LayerWeights>& layers_;
  std::vector<float> logits_;     // [n_batch][n_expert] router logits, then probabilities
  std::vector<int32_t> sel_;      // [n_batch][n_expert_used] chosen experts per token
  std::vector<float> weight_;     // [n_batch][n_expert_used] their weights
  std::vector<int32_t> first_;    // [n_expert + 1] first grouped row of each expert
  std::vector<int32_t> row_of_;   // [n_batch][n_expert_used] grouped row of (token, slot)
  std::vector<int32_t> token_of_; // [n_batch * n_expert_used] token of each grouped row
  std::vector<float> gate_, up_;  // [n_batch * n_expert_used][n_ff_exp] grouped expert hidden
  std::vector<float> down_;       // [n_batch * n_expert_used][n_embd] grouped expert outputs
  std::vector<float> acc_;        // [n_embd] one token's weighted sum
  std::vector<float> sh_gate_, sh_up_;  // [n_batch][n_ff_shexp] shared expert hidden
  std::vector<float> sh_out_;     // [n_batch][n_embd] shared expert output
  std::vector<uint8_t> xq_a_, xq_b_;  // [n_batch * n_expert_used][widest act bytes] quantised inputs
  // Flash mode.
  ExpertStore* store_ = nullptr;
  float eps_ = 1e-5f;
  bool pregate_ = true;
  int n_batch_ = 0;
  std::vector<float> xg_;          // [n_batch * n_expert_used][n_embd] inputs grouped by expert
  std::vector<float> pxn_;         // [n_batch][n_embd] residual normed with the next layer's ffn_norm
  std::vector<float> plogits_;     // [n_batch][n_expert] the next layer's router on it
  std::vector<int32_t> pred_sel_;  // [n_batch][n_expert_used] predicted experts of pred_layer_
  std::vector<float> pred_w_;      // [n_batch][n_expert_used] (their weights, unused)
  int pred_layer_ = -1;
  int pred_n_ = 0;
};

}  // namespace activeflow
