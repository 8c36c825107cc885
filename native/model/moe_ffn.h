// The mixture-of-experts FFN (Mixtral, Qwen3-MoE, Qwen2-MoE), dense: every expert in DRAM.
// A router picks the top-k experts per token and weights them as llama.cpp does (softmax over
// all experts, top-k, optionally renormalised); tokens are grouped by expert so each expert's
// rows are multiplied once for all the tokens routed to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

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
  // x[t] += MoE FFN of xn[t] for t in [0, n); xn and x are [n][n_embd].
  void forward(int layer, const float* xn, int n, float* x, ThreadPool& pool);
  size_t scratch_bytes() const;

 private:
  void shared_expert(const ExpertWeights& m, const float* xn, int n, ThreadPool& pool);

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
};

}  // namespace activeflow
