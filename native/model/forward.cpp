// The forward pass: embedding -> layers (attention, SwiGLU or GeGLU FFN, Gemma's post-norms)
// -> norm -> output head. Its linear layers come from a LinearSource (dense weights or the
// flash column store), so one pass serves both storages.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "activeflow/col_kernels.h"
#include "activeflow/kernels.h"
#include "model/model.h"

namespace activeflow {

namespace {

void AddBias(float* y, const Tensor& b, int n, int64_t dim, int64_t ld) {
  if (!b.present()) return;
  const float* bias = reinterpret_cast<const float*>(b.data);
  for (int t = 0; t < n; t++) {
    for (int64_t i = 0; i < dim; i++) y[t * ld + i] += bias[i];
  }
}

// s -> cap * tanh(s / cap), in ggml's order of float operations (scale, tanh, scale).
void Softcap(float* s, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; i++) s[i] = std::tanh(s[i] * inv) * cap;
}

// Gemma's post-norms: RMSNorm of a sub-block's output rows before the residual add.
void PostNorm(float* y, const Tensor& w, int n, int64_t dim, float eps) {
  if (!w.present()) return;
  for (int t = 0; t < n; t++) af_rmsnorm_f32(y + t * dim, reinterpret_cast<const float*>(w.data), y + t * dim, dim, eps);
}

}  // namespace

void Model::set_thresholds(const float* t) {
  if (t && moe_) throw ModelError("MODEL_UNSUPPORTED", "contextual sparsity is not supported for mixture-of-experts models yet");
  if (!t) {
    thresholds_.clear();
    return;
  }
  thresholds_.assign(t, t + static_cast<size_t>(cfg_.n_layer) * kSites);
}

void Model::set_column_norms(const float* norms) {
  if (!norms) {
    col_norms_.clear();
    predictor_.set_column_norms(nullptr, 0, 0);
    return;
  }
  col_norms_.assign(norms, norms + column_norm_count());
  predictor_.set_column_norms(col_norms_.data(), layer_channels_, site_offset_[kFfnIn] - site_offset_[kAttnIn]);
}

void Model::reset_site_counts() {
  for (int s = 0; s < kSites; s++) kept_[s] = seen_[s] = 0;
}

void Model::site_input(int layer, int site, float* x, int n, int64_t n_in, size_t stride) {
  // Weight-aware: one multiply by the site's column norms per element, no per-token state.
  const float* scale = col_norms_.empty() ? nullptr : col_norms_.data() + static_cast<size_t>(layer) * layer_channels_ + site_offset_[site];
  if (act_stats_.any()) {
    act_stats_.observe(layer, site, x, n, n_in, stride,
                       thresholds_.empty() ? -1.0f : thresholds_[static_cast<size_t>(layer) * kSites + site], scale);
  }
  seen_[site] += static_cast<uint64_t>(n) * n_in;
  if (thresholds_.empty()) {
    kept_[site] += static_cast<uint64_t>(n) * n_in;
    if (store_ && n == 1 && (site == kAttnOut || site == kFfnOut)) predictor_.observe(layer, site, x, n_in);
    return;
  }
  const float thr = thresholds_[static_cast<size_t>(layer) * kSites + site];
  uint64_t kept = 0;
  for (int t = 0; t < n; t++) {
    float* row = x + t * stride;
    if (scale) {
      for (int64_t i = 0; i < n_in; i++) {
        if (std::fabs(row[i]) * scale[i] > thr) kept++;
        else row[i] = 0.0f;
      }
    } else {
      for (int64_t i = 0; i < n_in; i++) {
        if (std::fabs(row[i]) > thr) kept++;
        else row[i] = 0.0f;
      }
    }
  }
  kept_[site] += kept;
  // Decode tokens feed the prediction statistics; the last row (the newest token) is what the
  // next token's o/down prediction uses.
  if (n == 1) predictor_.observe(layer, site, x, n_in);
  else if (site == kAttnOut || site == kFfnOut) predictor_.remember(layer, site, x + static_cast<size_t>(n - 1) * stride, n_in);
}

void Model::rope(float* v, int n_heads, int pos, int layer) {
  const int hd = cfg_.head_dim;
  const int half = cfg_.n_rot / 2;
  const float* inv_freq = cfg_.is_swa(layer) ? inv_freq_swa_.data() : inv_freq_.data();
  for (int i = 0; i < half; i++) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    // Scaled as ggml's rope scales them (its mscale), so q.k grows by attn_factor^2.
    const float c = std::cos(angle) * cfg_.rope_attn_factor, s = std::sin(angle) * cfg_.rope_attn_factor;
    for (int h = 0; h < n_heads; h++) {
      float* x = v + h * hd;
      // NeoX pairs element i with i + n_rot/2; the original (GPT-J) layout pairs 2i, 2i+1.
      const int a = cfg_.rope_neox ? i : 2 * i;
      const int b = cfg_.rope_neox ? i + half : 2 * i + 1;
      const float x0 = x[a], x1 = x[b];
      x[a] = x0 * c - x1 * s;
      x[b] = x0 * s + x1 * c;
    }
  }
}

void Model::attention(int layer, int n, int pos) {
  const int hd = cfg_.head_dim;
  const int q_dim = cfg_.n_head * hd;
  const int kv_dim = cfg_.n_head_kv * hd;
  const int group = cfg_.n_head / cfg_.n_head_kv;
  // Gemma scales q before the product (llama.cpp's graph does, then rounds q to f16);
  // the others scale the scores.
  const bool q_scaled = cfg_.attn_scale != 0.0f;
  const float scale = q_scaled ? cfg_.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
  // A sliding layer's query sees its last n_swa positions (llama.cpp masks p_q - p_k >= n_swa).
  const int window = cfg_.is_swa(layer) ? cfg_.n_swa : 0;
  const uint16_t* K = kv_k_.get() + static_cast<size_t>(layer) * cfg_.n_ctx * kv_dim;
  const uint16_t* V = kv_v_.get() + static_cast<size_t>(layer) * cfg_.n_ctx * kv_dim;
  const size_t kv_row = static_cast<size_t>(kv_dim) * sizeof(uint16_t);
  const int work = n * cfg_.n_head;
  pool_->for_units(work, [&](int64_t w, int slot) {
    float* scores = s_.scores.data() + static_cast<size_t>(slot) * cfg_.n_ctx;
    const void** vrows = s_.vrows.data() + static_cast<size_t>(slot) * cfg_.n_ctx;
    float qh[512];  // one head of q rounded to f16, as llama.cpp multiplies f16 keys
    const int t = static_cast<int>(w / cfg_.n_head);
    const int h = static_cast<int>(w % cfg_.n_head);
    const int kvh = h / group;
    // Causal: this token sees positions [first, pos + t], all of them unless the layer slides.
    const int end = pos + t + 1;
    const int first = window > 0 ? std::max(0, end - window) : 0;
    const int len = end - first;
    const float* q = s_.q.data() + static_cast<size_t>(t) * q_dim + h * hd;
    for (int d = 0; d < hd; d++) qh[d] = af_fp16_to_fp32(af_fp32_to_fp16(q_scaled ? q[d] * scale : q[d]));
    af_matvec(AF_F16, reinterpret_cast<const uint8_t*>(K + static_cast<size_t>(first) * kv_dim + kvh * hd), kv_row, qh, scores, hd, 0, len);
    if (!q_scaled) af_scale_f32(scale, scores, len);
    if (cfg_.attn_softcap != 0.0f) Softcap(scores, len, cfg_.attn_softcap);
    af_softmax_f32(scores, len);
    float* out = s_.attn.data() + static_cast<size_t>(t) * q_dim + h * hd;
    std::memset(out, 0, sizeof(float) * hd);
    // llama.cpp multiplies f16 values by probabilities rounded to f16: do the same.
    for (int j = 0; j < len; j++) {
      scores[j] = af_fp16_to_fp32(af_fp32_to_fp16(scores[j]));
      vrows[j] = V + static_cast<size_t>(first + j) * kv_dim + kvh * hd;
    }
    af_col_axpy(AF_F16, vrows, scores, len, out, 0, hd);
  });
}

void Model::eval(const int32_t* tokens, int n, int pos, float* logits, bool all_logits,
                 const std::atomic<bool>* abort) {
  if (n <= 0) throw ModelError("BAD_ARGUMENT", "eval needs at least one token");
  if (pos < 0 || pos + n > cfg_.n_ctx) {
    throw ModelError("CONTEXT_FULL", "positions " + std::to_string(pos) + ".." +
                                         std::to_string(pos + n - 1) + " exceed the context length " +
                                         std::to_string(cfg_.n_ctx));
  }
  for (int i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab) {
      throw ModelError("BAD_ARGUMENT", "token id " + std::to_string(tokens[i]) +
                                           " is outside the vocabulary (" +
                                           std::to_string(cfg_.n_vocab) + " tokens)");
    }
  }
  for (int done = 0; done < n; done += cfg_.n_batch) {
    const int m = std::min(cfg_.n_batch, n - done);
    const bool last = done + m == n;
    float* out = all_logits ? logits + static_cast<size_t>(done) * cfg_.n_vocab : (last ? logits : nullptr);
    eval_chunk(tokens + done, m, pos + done, out, all_logits, abort);
  }
}

void Model::eval_chunk(const int32_t* tokens, int n, int pos, float* logits, bool all_logits,
                       const std::atomic<bool>* abort) {
  const ModelConfig& c = cfg_;
  const int E = c.n_embd, F = c.n_ff, hd = c.head_dim;
  const int q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
  float* x = s_.x.data();
  float* xn = s_.xn.data();

  for (int t = 0; t < n; t++) embed(tokens[t], x + t * E);
  if (c.embd_scale != 1.0f) af_scale_f32(c.embd_scale, x, static_cast<int64_t>(n) * E);
  predictor_.begin_token();
  if (experts_) experts_->release_all();  // an aborted pass may have left experts pinned
  const bool preload = store_ && store_->preloading() && flash_->predict && !store_->reading_ahead();
  const int G = store_ ? store_->group_size() : 1;
  const int n_groups = (c.n_layer + G - 1) / G;

  for (int il = 0; il < c.n_layer; il++) {
    if (abort && abort->load(std::memory_order_relaxed)) throw ModelError("ABORTED", "evaluation aborted");
    const LayerWeights& L = w_.layers[il];
    // At a group's first layer, read the next group's predicted channels while this group
    // computes (the first group predicts itself: its reads are batched, not per layer).
    // Groups of one layer prefetch per site instead (prefetch_site below).
    if (preload && G > 1 && il % G == 0) {
      const int g = il / G;
      if (g == 0) preload_group(0, x, n);
      if (g + 1 < n_groups) preload_group(g + 1, x, n);
    }
    const bool probe = store_ && n == 1 && !thresholds_.empty();
    if (probe) predictor_.probe(il, x, flash_->predict_margin);

    // Attention block.
    for (int t = 0; t < n; t++) {
      af_rmsnorm_f32(x + t * E, reinterpret_cast<const float*>(L.attn_norm.data), xn + t * E, E, c.rms_eps);
    }
    site_input(il, kAttnIn, xn, n, E, E);
    // While attn_in reads and attention computes, ffn_in of this layer is read as predicted
    // from the residual before attention (one sub-block ahead).
    if (preload && G == 1 && !moe_) prefetch_site(il, kFfnIn, x, n);
    {
      float* ys[] = {s_.q.data(), s_.k.data(), s_.v.data()};
      const int64_t ld[] = {q_dim, kv_dim, kv_dim};
      linears_->linear(il, kAttnIn, xn, n, E, ys, ld, *pool_);
    }
    AddBias(s_.q.data(), L.bq, n, q_dim, q_dim);
    AddBias(s_.k.data(), L.bk, n, kv_dim, kv_dim);
    AddBias(s_.v.data(), L.bv, n, kv_dim, kv_dim);
    uint16_t* Kc = kv_k_.get() + static_cast<size_t>(il) * c.n_ctx * kv_dim;
    uint16_t* Vc = kv_v_.get() + static_cast<size_t>(il) * c.n_ctx * kv_dim;
    for (int t = 0; t < n; t++) {
      float* q = s_.q.data() + t * q_dim;
      float* k = s_.k.data() + t * kv_dim;
      if (L.q_norm.present()) {
        for (int h = 0; h < c.n_head; h++)
          af_rmsnorm_f32(q + h * hd, reinterpret_cast<const float*>(L.q_norm.data), q + h * hd, hd, c.rms_eps);
      }
      if (L.k_norm.present()) {
        for (int h = 0; h < c.n_head_kv; h++)
          af_rmsnorm_f32(k + h * hd, reinterpret_cast<const float*>(L.k_norm.data), k + h * hd, hd, c.rms_eps);
      }
      rope(q, c.n_head, pos + t, il);
      rope(k, c.n_head_kv, pos + t, il);
      uint16_t* kd = Kc + static_cast<size_t>(pos + t) * kv_dim;
      uint16_t* vd = Vc + static_cast<size_t>(pos + t) * kv_dim;
      const float* v = s_.v.data() + t * kv_dim;
      for (int i = 0; i < kv_dim; i++) {
        kd[i] = af_fp32_to_fp16(k[i]);
        vd[i] = af_fp32_to_fp16(v[i]);
      }
    }
    attention(il, n, pos);
    // o projection straight into the FFN-input scratch, then the residual add.
    site_input(il, kAttnOut, s_.attn.data(), n, q_dim, q_dim);
    {
      float* ys[] = {xn};
      const int64_t ld[] = {E};
      linears_->linear(il, kAttnOut, s_.attn.data(), n, q_dim, ys, ld, *pool_);
    }
    PostNorm(xn, L.attn_post_norm, n, E, c.rms_eps);
    for (int i = 0; i < n * E; i++) x[i] += xn[i];
    if (probe) predictor_.probe_half(il + 1, x, flash_->predict_margin);

    // Gated FFN block: SwiGLU, or GeGLU for Gemma.
    for (int t = 0; t < n; t++) {
      af_rmsnorm_f32(x + t * E, reinterpret_cast<const float*>(L.ffn_norm.data), xn + t * E, E, c.rms_eps);
    }
    site_input(il, kFfnIn, xn, n, E, E);
    // While ffn_in reads and the FFN computes, the next layer's attn_in.
    if (preload && G == 1 && il + 1 < c.n_layer) prefetch_site(il + 1, kAttnIn, x, n);
    if (moe_) {  // mixture of experts (model/moe_ffn.h): x += the routed experts' FFN
      moe_->forward(il, xn, n, x, *pool_);
      continue;
    }
    {
      float* ys[] = {s_.gate.data(), s_.up.data()};
      const int64_t ld[] = {F, F};
      linears_->linear(il, kFfnIn, xn, n, E, ys, ld, *pool_);
    }
    for (int t = 0; t < n; t++) {
      float* g = s_.gate.data() + t * F;
      if (c.ffn_gelu) af_gelu_mul_f32(g, s_.up.data() + t * F, g, F);
      else af_silu_mul_f32(g, s_.up.data() + t * F, g, F);
    }
    site_input(il, kFfnOut, s_.gate.data(), n, F, F);
    {
      float* ys[] = {xn};
      const int64_t ld[] = {E};
      linears_->linear(il, kFfnOut, s_.gate.data(), n, F, ys, ld, *pool_);
    }
    PostNorm(xn, L.ffn_post_norm, n, E, c.rms_eps);
    for (int i = 0; i < n * E; i++) x[i] += xn[i];
  }

  // Nothing this pass computed on may still be in flight (and a failed prefetch throws here).
  if (store_) store_->settle();
  if (!logits) return;  // a middle prefill chunk: only the KV cache matters
  const float* on = reinterpret_cast<const float*>(w_.output_norm.data);
  if (all_logits) {
    for (int t = 0; t < n; t++) af_rmsnorm_f32(x + t * E, on, xn + t * E, E, c.rms_eps);
    output_head(xn, n, logits);
  } else {
    af_rmsnorm_f32(x + (n - 1) * E, on, xn, E, c.rms_eps);
    output_head(xn, 1, logits);
  }
  if (c.final_softcap != 0.0f) Softcap(logits, static_cast<int64_t>(all_logits ? n : 1) * c.n_vocab, c.final_softcap);
}

void Model::preload_group(int group, const float* x, int n) {
  const int G = store_->group_size();
  const int first = group * G, last = std::min(cfg_.n_layer, first + G);
  if (first >= cfg_.n_layer) return;
  store_->preload(group, predictor_.group_candidates(first, last, x, n, flash_->predict_margin));
}

void Model::prefetch_site(int layer, int site, const float* x, int n) {
  predictor_.set_residual(x, n);
  store_->prefetch_site(layer, site, predictor_.scores(layer, site), flash_->predict_margin);
}

void Model::embed(int32_t token, float* out) {
  const Tensor& te = w_.tok_embd;
  const uint8_t* row = te.data ? te.data + static_cast<size_t>(token) * te.row_bytes : nullptr;
  if (te.packed) {
    af_unpack_row(te.type, te.data, te.row_bytes, te.ne1, token, row_staging_.data());
    row = row_staging_.data();
  } else if (!row) {
    ReadReq req{te.file_offset + static_cast<uint64_t>(token) * te.row_bytes, static_cast<uint32_t>(te.row_bytes),
                row_staging_.data()};
    reader_->read(&req, 1, nullptr);
    row = row_staging_.data();
  }
  af_dequantize_row(te.type, row, out, cfg_.n_embd);
}

// logits [n][n_vocab] = output head . xn. A head left on flash streams through a staging
// buffer in row chunks: slow, but it lets budgets below the head's size run at all.
void Model::output_head(const float* xn, int n, float* logits) {
  const Tensor& w = w_.output;
  if (w.data) {
    DenseMatmul(xn, n, cfg_.n_embd, {{&w, logits, cfg_.n_vocab}}, s_.xq.data(), *pool_);
    return;
  }
  const int64_t rows_per = std::max<int64_t>(1, static_cast<int64_t>(head_staging_.size() / w.row_bytes));
  for (int64_t r0 = 0; r0 < w.ne1; r0 += rows_per) {
    const int64_t r1 = std::min(w.ne1, r0 + rows_per);
    ReadReq req{w.file_offset + static_cast<uint64_t>(r0) * w.row_bytes,
                static_cast<uint32_t>((r1 - r0) * w.row_bytes), head_staging_.data()};
    reader_->read(&req, 1, nullptr);
    head_bytes_read_ += req.length;
    // A view of rows [r0, r1) as its own tensor; outputs land at logits + r0.
    Tensor chunk = w;
    chunk.data = head_staging_.data();
    chunk.ne1 = r1 - r0;
    std::vector<float> tmp;
    float* y = logits + r0;
    if (n > 1) {
      tmp.resize(static_cast<size_t>(n) * (r1 - r0));
      y = tmp.data();
    }
    DenseMatmul(xn, n, cfg_.n_embd, {{&chunk, y, r1 - r0}}, s_.xq.data(), *pool_);
    for (int b = 1; n > 1 && b <= n; b++) {
      std::memcpy(logits + static_cast<size_t>(b - 1) * cfg_.n_vocab + r0, tmp.data() + static_cast<size_t>(b - 1) * (r1 - r0),
                  sizeof(float) * (r1 - r0));
    }
  }
}

}  // namespace activeflow
