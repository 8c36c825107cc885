// Model construction: maps the file, binds tensors by their GGUF names, checks shapes
// against the config, allocates the KV cache and scratch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "activeflow/kernels.h"
#include "model/model.h"

namespace activeflow {

namespace {

std::string Shape(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); i++) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace

Model::Model(const std::string& path, const ModelConfig& cfg, const std::vector<TensorSpec>& tensors,
             int threads)
    : cfg_(cfg), file_(path) {
  if (cfg_.n_layer <= 0 || cfg_.n_embd <= 0 || cfg_.n_head <= 0 || cfg_.n_head_kv <= 0 ||
      cfg_.head_dim <= 0 || cfg_.n_vocab <= 0 || cfg_.n_ff <= 0 || cfg_.n_ctx <= 0 ||
      cfg_.n_head % cfg_.n_head_kv != 0 || cfg_.n_rot <= 0 || cfg_.n_rot > cfg_.head_dim ||
      cfg_.n_rot % 2 != 0) {
    throw ModelError("MODEL_UNSUPPORTED", path + ": inconsistent model config");
  }
  bind_weights(tensors);

  const int kv_dim = cfg_.n_head_kv * cfg_.head_dim;
  kv_elems_ = static_cast<size_t>(cfg_.n_layer) * cfg_.n_ctx * kv_dim;
  kv_k_.reset(static_cast<float*>(std::calloc(kv_elems_, sizeof(float))));
  kv_v_.reset(static_cast<float*>(std::calloc(kv_elems_, sizeof(float))));
  if (!kv_k_ || !kv_v_) {
    throw ModelError("NATIVE", "cannot allocate the KV cache (" +
                                   std::to_string(kv_elems_ * 8 / (1 << 20)) + " MiB)");
  }

  // Rotation frequency per pair; llama3 files carry per-pair divisors in rope_freqs.
  inv_freq_.resize(cfg_.n_rot / 2);
  for (int i = 0; i < cfg_.n_rot / 2; i++) {
    double f = std::pow(static_cast<double>(cfg_.rope_theta), -2.0 * i / cfg_.n_rot);
    if (w_.rope_freqs.present()) f /= reinterpret_cast<const float*>(w_.rope_freqs.data)[i];
    inv_freq_[i] = static_cast<float>(f);
  }

  const int B = cfg_.n_batch;
  const int q_dim = cfg_.n_head * cfg_.head_dim;
  const int wide = std::max({cfg_.n_embd, cfg_.n_ff, q_dim});
  s_.x.assign(static_cast<size_t>(B) * cfg_.n_embd, 0.0f);
  s_.xn.assign(static_cast<size_t>(B) * wide, 0.0f);
  s_.q.assign(static_cast<size_t>(B) * q_dim, 0.0f);
  s_.k.assign(static_cast<size_t>(B) * kv_dim, 0.0f);
  s_.v.assign(static_cast<size_t>(B) * kv_dim, 0.0f);
  s_.attn.assign(static_cast<size_t>(B) * q_dim, 0.0f);
  s_.gate.assign(static_cast<size_t>(B) * cfg_.n_ff, 0.0f);
  s_.up.assign(static_cast<size_t>(B) * cfg_.n_ff, 0.0f);
  s_.logits.assign(cfg_.n_vocab, 0.0f);
  size_t act = 0;
  auto widen = [&](const Tensor& t) {
    if (t.present()) act = std::max(act, af_act_bytes(t.type, t.ne0));
  };
  widen(w_.output);
  for (const auto& l : w_.layers) {
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) widen(*t);
  }
  s_.xq.assign(static_cast<size_t>(B) * act + 64, 0);
  set_threads(threads);
}

void Model::set_threads(int threads) {
  threads = std::max(1, threads);
  if (pool_ && pool_->size() == threads) return;
  pool_ = std::make_unique<ThreadPool>(threads);
  s_.scores.assign(static_cast<size_t>(threads) * cfg_.n_ctx, 0.0f);
}

void Model::bind_weights(const std::vector<TensorSpec>& tensors) {
  std::unordered_map<std::string, const TensorSpec*> by_name;
  for (const auto& t : tensors) by_name[t.name] = &t;
  const size_t file_size = file_.size();

  // Binds `name` with the expected dims; ne0/ne1 of a missing optional tensor stay empty.
  auto bind = [&](const std::string& name, std::vector<int64_t> want, bool required) -> Tensor {
    auto it = by_name.find(name);
    Tensor t;
    if (it == by_name.end()) {
      if (required) throw ModelError("MODEL_MISSING_TENSOR", "model has no tensor " + name);
      return t;
    }
    const TensorSpec& s = *it->second;
    std::vector<int64_t> dims = s.dims;
    while (dims.size() > want.size() && dims.back() == 1) dims.pop_back();
    while (dims.size() < want.size()) dims.push_back(1);
    if (dims != want) {
      throw ModelError("MODEL_BAD_SHAPE", "tensor " + name + " has shape " + Shape(s.dims) +
                                              ", expected " + Shape(want));
    }
    if (!af_type_supported(s.type)) {
      throw ModelError("GGUF_UNKNOWN_TYPE",
                       "tensor " + name + " has unsupported type " + std::to_string(s.type));
    }
    t.type = s.type;
    t.ne0 = dims[0];
    t.ne1 = dims.size() > 1 ? dims[1] : 1;
    if (t.ne0 % af_type_block_elems(t.type) != 0) {
      throw ModelError("MODEL_BAD_SHAPE", "tensor " + name + ": row length " + std::to_string(t.ne0) +
                                              " is not a multiple of its block size");
    }
    t.row_bytes = af_row_bytes(t.type, t.ne0);
    const uint64_t bytes = static_cast<uint64_t>(t.row_bytes) * t.ne1;
    if (s.offset > file_size || bytes > file_size - s.offset) {
      throw ModelError("GGUF_BAD_TENSOR", "tensor " + name + " at offset " + std::to_string(s.offset) +
                                              " runs past the end of the file (" +
                                              std::to_string(file_size) + " bytes)");
    }
    t.data = file_.data() + s.offset;
    return t;
  };
  auto bind_f32 = [&](const std::string& name, int64_t n, bool required) -> Tensor {
    Tensor t = bind(name, {n}, required);
    if (t.present() && t.type != AF_F32) {
      throw ModelError("MODEL_UNSUPPORTED", "tensor " + name + " must be F32");
    }
    return t;
  };

  const int64_t E = cfg_.n_embd, F = cfg_.n_ff, V = cfg_.n_vocab;
  const int64_t Q = static_cast<int64_t>(cfg_.n_head) * cfg_.head_dim;
  const int64_t KV = static_cast<int64_t>(cfg_.n_head_kv) * cfg_.head_dim;
  w_.tok_embd = bind("token_embd.weight", {E, V}, true);
  w_.output_norm = bind_f32("output_norm.weight", E, true);
  w_.output = bind("output.weight", {E, V}, false);
  if (!w_.output.present()) w_.output = w_.tok_embd;  // tied embeddings
  w_.rope_freqs = bind_f32("rope_freqs.weight", cfg_.n_rot / 2, false);
  w_.layers.resize(cfg_.n_layer);
  for (int i = 0; i < cfg_.n_layer; i++) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = w_.layers[i];
    l.attn_norm = bind_f32(p + "attn_norm.weight", E, true);
    l.wq = bind(p + "attn_q.weight", {E, Q}, true);
    l.wk = bind(p + "attn_k.weight", {E, KV}, true);
    l.wv = bind(p + "attn_v.weight", {E, KV}, true);
    l.wo = bind(p + "attn_output.weight", {Q, E}, true);
    l.bq = bind_f32(p + "attn_q.bias", Q, false);
    l.bk = bind_f32(p + "attn_k.bias", KV, false);
    l.bv = bind_f32(p + "attn_v.bias", KV, false);
    l.q_norm = bind_f32(p + "attn_q_norm.weight", cfg_.head_dim, false);
    l.k_norm = bind_f32(p + "attn_k_norm.weight", cfg_.head_dim, false);
    l.ffn_norm = bind_f32(p + "ffn_norm.weight", E, true);
    l.gate = bind(p + "ffn_gate.weight", {E, F}, true);
    l.up = bind(p + "ffn_up.weight", {E, F}, true);
    l.down = bind(p + "ffn_down.weight", {F, E}, true);
  }
}

}  // namespace activeflow
