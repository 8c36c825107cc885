// The model's tensors as views into the mapped file (dense) or the resident copy (flash).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace activeflow {

// A view of one tensor inside the mapped file. For a linear weight, rows are outputs:
// ne1 rows of ne0 elements each (GGML order [ne0, ne1]).
struct Tensor {
  const uint8_t* data = nullptr;  // null for a flash-resident tensor read on demand
  uint64_t file_offset = 0;
  int type = -1;
  int64_t ne0 = 0;
  int64_t ne1 = 1;
  size_t row_bytes = 0;
  bool packed = false;  // rows in the packed layout (activeflow/kernels.h, AF_PACK_ROWS)
  bool present() const { return type >= 0; }
};

// A mixture-of-experts FFN (model/moe_ffn.h) in place of gate/up/down. The expert tensors
// are 3-D, [n_in, n_out, n_expert]; each expert's slice is a contiguous 2-D matrix.
struct ExpertWeights {
  Tensor router;                         // ffn_gate_inp [n_embd -> n_expert]
  std::vector<Tensor> gate, up;          // [n_expert] of [n_embd -> n_ff_exp]
  std::vector<Tensor> down;              // [n_expert] of [n_ff_exp -> n_embd]
  Tensor shexp_gate_inp;                 // qwen2moe: [n_embd] f32, the shared expert's gate
  Tensor shexp_gate, shexp_up;           // qwen2moe: [n_embd -> n_ff_shexp]
  Tensor shexp_down;                     // qwen2moe: [n_ff_shexp -> n_embd]
};

struct LayerWeights {
  Tensor attn_norm;  // [n_embd] f32
  Tensor wq;         // [n_embd -> n_head * head_dim]
  Tensor wk;         // [n_embd -> n_head_kv * head_dim]
  Tensor wv;         // [n_embd -> n_head_kv * head_dim]
  Tensor wo;         // [n_head * head_dim -> n_embd]
  Tensor attn_post_norm;  // optional (gemma) [n_embd] f32: RMSNorm of the o output before the residual add
  Tensor bq, bk, bv; // optional biases (qwen2) [n_head*head_dim], [kv_dim], [kv_dim] f32
  Tensor q_norm;     // optional per-head RMSNorm (qwen3) [head_dim] f32
  Tensor k_norm;     // optional [head_dim] f32
  Tensor ffn_norm;   // [n_embd] f32
  Tensor gate;       // [n_embd -> n_ff]
  Tensor up;         // [n_embd -> n_ff]
  Tensor down;       // [n_ff -> n_embd]
  Tensor ffn_post_norm;  // optional (gemma) [n_embd] f32: RMSNorm of the down output
  ExpertWeights moe; // MoE models only (router present), instead of gate/up/down
};

struct Weights {
  Tensor tok_embd;     // [n_embd, n_vocab]: one row per token
  Tensor output_norm;  // [n_embd] f32
  Tensor output;       // [n_embd -> n_vocab]; tok_embd when tied
  Tensor rope_freqs;   // optional [n_rot/2] f32: llama3 frequency factors (theta / factor)
  std::vector<LayerWeights> layers;
};

}  // namespace activeflow
