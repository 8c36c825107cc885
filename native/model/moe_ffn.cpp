#include "model/moe_ffn.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "activeflow/kernels.h"
#include "model/dense_linear.h"
#include "model/model_error.h"

namespace activeflow {

namespace {

// llama.cpp clamps the sum of the selected weights to the smallest normal F16 before dividing.
constexpr float kMinWeightSum = 6.103515625e-5f;

// One expert matrix times the rows routed to it: w x_b for b in [0, n), into y ([n][ldy]).
struct Job {
  const Tensor* w;
  const uint8_t* xq;
  size_t act;
  int n;
  float* y;
  int64_t ldy;
};

// Runs every job's rows in units over the pool (one fork-join for all experts of a phase).
void RunJobs(const std::vector<Job>& jobs, ThreadPool& pool) {
  std::vector<int64_t> unit(jobs.size()), first(jobs.size() + 1, 0);
  for (size_t i = 0; i < jobs.size(); i++) {
    unit[i] = RowUnit(jobs[i].w->ne1, pool.size());
    first[i + 1] = first[i] + (jobs[i].w->ne1 + unit[i] - 1) / unit[i];
  }
  pool.for_units(first.back(), [&](int64_t u, int) {
    const size_t i = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), u) - first.begin()) - 1;
    const Job& j = jobs[i];
    const int64_t r0 = (u - first[i]) * unit[i], r1 = std::min(j.w->ne1, r0 + unit[i]);
    DenseRows(*j.w, j.xq, j.act, j.n, j.y, j.ldy, r0, r1);
  });
}

}  // namespace

void RouteTopK(float* logits, int n_expert, int k, bool norm, int32_t* experts, float* weights) {
  af_softmax_f32(logits, n_expert);
  int32_t order[kMaxExperts];
  for (int e = 0; e < n_expert; e++) order[e] = e;
  std::partial_sort(order, order + k, order + n_expert, [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  float sum = 0.0f;
  for (int j = 0; j < k; j++) {
    experts[j] = order[j];
    weights[j] = logits[order[j]];
    sum += weights[j];
  }
  if (norm) {
    sum = std::max(sum, kMinWeightSum);
    for (int j = 0; j < k; j++) weights[j] /= sum;
  }
}

MoeFfn::MoeFfn(const MoeConfig& cfg, int n_embd, int n_batch, const std::vector<LayerWeights>& layers)
    : cfg_(cfg), n_embd_(n_embd), layers_(layers), n_batch_(n_batch) {
  const size_t rows = static_cast<size_t>(n_batch) * cfg_.n_expert_used;
  logits_.resize(static_cast<size_t>(n_batch) * cfg_.n_expert);
  sel_.resize(rows);
  weight_.resize(rows);
  first_.resize(cfg_.n_expert + 1);
  row_of_.resize(rows);
  token_of_.resize(rows);
  gate_.resize(rows * cfg_.n_ff_exp);
  up_.resize(rows * cfg_.n_ff_exp);
  down_.resize(rows * n_embd_);
  acc_.resize(n_embd_);
  if (cfg_.n_ff_shexp > 0) {
    sh_gate_.resize(static_cast<size_t>(n_batch) * cfg_.n_ff_shexp);
    sh_up_.resize(sh_gate_.size());
    sh_out_.resize(static_cast<size_t>(n_batch) * n_embd_);
  }
  // Quantised inputs: the router's, the experts' (gate and up may differ in type) and the
  // down projections' (reusing a buffer once gate/up are done); the shared expert's too.
  size_t act = 0;
  for (const auto& l : layers_) {
    const ExpertWeights& m = l.moe;
    auto widen = [&](const Tensor& t) {
      if (t.present()) act = std::max(act, af_act_bytes(t.type, t.ne0));
    };
    widen(m.router);
    for (const auto* v : {&m.gate, &m.up, &m.down}) {
      if (!v->empty()) widen(v->front());
    }
    for (const Tensor* t : {&m.shexp_gate, &m.shexp_up, &m.shexp_down}) widen(*t);
  }
  xq_a_.assign(rows * act + 64, 0);
  xq_b_.assign(rows * act + 64, 0);
}

size_t MoeFfn::scratch_bytes() const {
  const size_t floats = logits_.size() + weight_.size() + gate_.size() + up_.size() + down_.size() + acc_.size() +
                        sh_gate_.size() + sh_up_.size() + sh_out_.size();
  const size_t ints = sel_.size() + first_.size() + row_of_.size() + token_of_.size();
  const size_t flash = (xg_.size() + pxn_.size() + plogits_.size() + pred_w_.size()) * sizeof(float) + pred_sel_.size() * sizeof(int32_t);
  return floats * sizeof(float) + ints * sizeof(int32_t) + xq_a_.size() + xq_b_.size() + flash;
}

void MoeFfn::set_store(ExpertStore* store, float eps, bool pregate) {
  store_ = store;
  eps_ = eps;
  pregate_ = pregate;
  const size_t B = static_cast<size_t>(n_batch_), K = static_cast<size_t>(cfg_.n_expert_used);
  xg_.assign(store ? B * K * n_embd_ : 0, 0.0f);
  pxn_.assign(store ? B * n_embd_ : 0, 0.0f);
  plogits_.assign(store ? B * cfg_.n_expert : 0, 0.0f);
  pred_sel_.assign(store ? B * K : 0, 0);
  pred_w_.assign(store ? B * K : 0, 0.0f);
  pred_layer_ = -1;
}

// Route: logits, softmax over all experts, top-k, weights; then the (token, slot) pairs
// grouped by expert, tokens ascending within an expert.
void MoeFfn::route(const ExpertWeights& m, const float* xn, int n, ThreadPool& pool) {
  const int E = n_embd_, NE = cfg_.n_expert, K = cfg_.n_expert_used;
  DenseMatmul(xn, n, E, {{&m.router, logits_.data(), NE}}, xq_a_.data(), pool);
  for (int t = 0; t < n; t++) {
    RouteTopK(logits_.data() + static_cast<size_t>(t) * NE, NE, K, cfg_.norm_weights, sel_.data() + t * K,
              weight_.data() + t * K);
  }

  // Group the (token, slot) pairs by expert, tokens ascending within an expert.
  std::fill(first_.begin(), first_.end(), 0);
  for (int i = 0; i < n * K; i++) first_[sel_[i] + 1]++;
  for (int e = 0; e < NE; e++) first_[e + 1] += first_[e];
  {
    std::vector<int32_t> next(first_.begin(), first_.end() - 1);
    for (int t = 0; t < n; t++) {
      for (int j = 0; j < K; j++) {
        const int r = next[sel_[t * K + j]]++;
        row_of_[t * K + j] = r;
        token_of_[r] = t;
      }
    }
  }
}

void MoeFfn::forward(int layer, const float* xn, int n, float* x, ThreadPool& pool) {
  if (store_) {
    forward_flash(layer, xn, n, x, pool);
    return;
  }
  const ExpertWeights& m = layers_[static_cast<size_t>(layer)].moe;
  const int E = n_embd_, F = cfg_.n_ff_exp, NE = cfg_.n_expert, K = cfg_.n_expert_used;
  route(m, xn, n, pool);
  const int rows = n * K;

  // Gate and up of every chosen expert over its rows, in one pass over the pool.
  const Tensor& g0 = m.gate.front();
  const Tensor& u0 = m.up.front();
  const size_t act_g = af_act_bytes(g0.type, E), act_u = af_act_bytes(u0.type, E);
  const bool same_act = af_vec_dot_type(g0.type) == af_vec_dot_type(u0.type);
  auto quantize_in = [&](int64_t r, int) {
    const float* src = xn + static_cast<size_t>(token_of_[r]) * E;
    af_quantize_act(g0.type, src, xq_a_.data() + r * act_g, E);
    if (!same_act) af_quantize_act(u0.type, src, xq_b_.data() + r * act_u, E);
  };
  if (rows < 2 * pool.size()) {
    for (int r = 0; r < rows; r++) quantize_in(r, 0);
  } else {
    pool.for_units(rows, quantize_in);
  }
  const uint8_t* xq_u = same_act ? xq_a_.data() : xq_b_.data();
  std::vector<Job> jobs;
  jobs.reserve(2 * static_cast<size_t>(std::min(NE, rows)));
  for (int e = 0; e < NE; e++) {
    const int c = first_[e + 1] - first_[e];
    if (c == 0) continue;
    const size_t r = first_[e];
    jobs.push_back({&m.gate[e], xq_a_.data() + r * act_g, act_g, c, gate_.data() + r * F, F});
    jobs.push_back({&m.up[e], xq_u + r * act_u, act_u, c, up_.data() + r * F, F});
  }
  RunJobs(jobs, pool);

  // SwiGLU, then down of every chosen expert.
  const Tensor& d0 = m.down.front();
  const size_t act_d = af_act_bytes(d0.type, F);
  auto down_in = [&](int64_t r, int) {
    float* h = gate_.data() + r * F;
    af_silu_mul_f32(h, up_.data() + r * F, h, F);
    af_quantize_act(d0.type, h, xq_a_.data() + r * act_d, F);
  };
  if (rows < 2 * pool.size()) {
    for (int r = 0; r < rows; r++) down_in(r, 0);
  } else {
    pool.for_units(rows, down_in);
  }
  jobs.clear();
  for (int e = 0; e < NE; e++) {
    const int c = first_[e + 1] - first_[e];
    if (c == 0) continue;
    const size_t r = first_[e];
    jobs.push_back({&m.down[e], xq_a_.data() + r * act_d, act_d, c, down_.data() + r * E, E});
  }
  RunJobs(jobs, pool);

  if (cfg_.n_ff_shexp > 0) shared_expert(m, xn, n, pool);
  combine(n, x);
}

// Weighted sum in slot order (descending probability), then the shared expert, then the
// residual: llama.cpp's order of additions.
void MoeFfn::combine(int n, float* x) {
  const int E = n_embd_, K = cfg_.n_expert_used;
  float* acc = acc_.data();
  for (int t = 0; t < n; t++) {
    for (int j = 0; j < K; j++) {
      const float w = weight_[t * K + j];
      const float* d = down_.data() + static_cast<size_t>(row_of_[t * K + j]) * E;
      if (j == 0) {
        for (int i = 0; i < E; i++) acc[i] = d[i] * w;
      } else {
        for (int i = 0; i < E; i++) acc[i] += d[i] * w;
      }
    }
    if (cfg_.n_ff_shexp > 0) {
      const float* s = sh_out_.data() + static_cast<size_t>(t) * E;
      for (int i = 0; i < E; i++) acc[i] += s[i];
    }
    float* xt = x + static_cast<size_t>(t) * E;
    for (int i = 0; i < E; i++) xt[i] += acc[i];
  }
}

// qwen2moe's shared expert: a SwiGLU FFN every token takes, scaled by
// sigmoid(ffn_gate_inp_shexp . x) (llama.cpp writes it silu(g) / g: the same to a rounding,
// without its 0 / 0 at g = 0).
void MoeFfn::shared_expert(const ExpertWeights& m, const float* xn, int n, ThreadPool& pool) {
  const int E = n_embd_, S = cfg_.n_ff_shexp;
  DenseMatmul(xn, n, E, {{&m.shexp_gate, sh_gate_.data(), S}, {&m.shexp_up, sh_up_.data(), S}}, xq_a_.data(), pool);
  for (int t = 0; t < n; t++) {
    float* h = sh_gate_.data() + static_cast<size_t>(t) * S;
    af_silu_mul_f32(h, sh_up_.data() + static_cast<size_t>(t) * S, h, S);
  }
  DenseMatmul(sh_gate_.data(), n, S, {{&m.shexp_down, sh_out_.data(), E}}, xq_a_.data(), pool);
  const float* gw = reinterpret_cast<const float*>(m.shexp_gate_inp.data);
  for (int t = 0; t < n; t++) {
    const float g = af_dot_f32(gw, xn + static_cast<size_t>(t) * E, E);
    const float s = 1.0f / (1.0f + std::exp(-g));
    float* o = sh_out_.data() + static_cast<size_t>(t) * E;
    for (int i = 0; i < E; i++) o[i] *= s;
  }
}

// Flash mode: the same routing and sums as forward, the experts' products from whole experts
// in the store's slots (column kernels over every channel, so a product's bits depend only on
// the expert's bytes). Experts are taken in waves of at most the pool's slots (a prefill may
// route to more experts than fit); each wave's reads are all issued before the first expert
// computes, so reading the next overlaps computing this one.
void MoeFfn::forward_flash(int layer, const float* xn, int n, float* x, ThreadPool& pool) {
  const ExpertWeights& m = layers_[static_cast<size_t>(layer)].moe;
  const int E = n_embd_, F = cfg_.n_ff_exp, NE = cfg_.n_expert, S = cfg_.n_ff_shexp;
  route(m, xn, n, pool);
  score_prediction(layer, n);
  std::vector<int32_t> need;
  for (int e = 0; e < NE; e++) {
    if (first_[e + 1] > first_[e]) need.push_back(e);
  }
  if (S > 0) need.push_back(NE);  // the shared expert: every token
  const int rows = first_[NE];
  for (int r = 0; r < rows; r++) std::memcpy(xg_.data() + static_cast<size_t>(r) * E, xn + static_cast<size_t>(token_of_[r]) * E, sizeof(float) * E);

  std::vector<int32_t> slot;
  for (size_t i = 0; i < need.size();) {
    const size_t wave = std::min(need.size() - i, static_cast<size_t>(store_->slots()));
    slot.assign(wave, -1);
    // Resident experts are pinned first, so reading a missing one never evicts another this
    // wave needs (a pre-gated one, say).
    for (int pass = 0; pass < 2; pass++) {
      for (size_t k = 0; k < wave; k++) {
        if (slot[k] < 0 && (pass == 1 || store_->resident(layer, need[i + k]))) slot[k] = store_->acquire(layer, need[i + k], need[i + k] < NE);
      }
      if (pass == 0) store_->routed(layer);
    }
    if (i == 0 && pregate_) pregate(layer, x, n, pool);
    for (size_t k = 0; k < wave; k++) {
      const int e = need[i + k];
      const ExpertSpan& sp = store_->span(layer, e);
      const uint8_t* base = store_->wait(slot[k]);
      const double t0 = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
      if (e == NE) {
        float* gu[] = {sh_gate_.data(), sh_up_.data()};
        ExpertLinear(sp, base, true, xn, n, gu, S, pool);
        for (int t = 0; t < n; t++) {
          float* h = sh_gate_.data() + static_cast<size_t>(t) * S;
          af_silu_mul_f32(h, sh_up_.data() + static_cast<size_t>(t) * S, h, S);
        }
        float* d[] = {sh_out_.data()};
        ExpertLinear(sp, base, false, sh_gate_.data(), n, d, E, pool);
        const float* gw = reinterpret_cast<const float*>(m.shexp_gate_inp.data);
        for (int t = 0; t < n; t++) {
          const float g = af_dot_f32(gw, xn + static_cast<size_t>(t) * E, E);
          const float sg = 1.0f / (1.0f + std::exp(-g));
          float* o = sh_out_.data() + static_cast<size_t>(t) * E;
          for (int j = 0; j < E; j++) o[j] *= sg;
        }
      } else {
        const int r = first_[e], c = first_[e + 1] - first_[e];
        float* gu[] = {gate_.data() + static_cast<size_t>(r) * F, up_.data() + static_cast<size_t>(r) * F};
        ExpertLinear(sp, base, true, xg_.data() + static_cast<size_t>(r) * E, c, gu, F, pool);
        for (int b = 0; b < c; b++) {
          float* h = gu[0] + static_cast<size_t>(b) * F;
          af_silu_mul_f32(h, gu[1] + static_cast<size_t>(b) * F, h, F);
        }
        float* d[] = {down_.data() + static_cast<size_t>(r) * E};
        ExpertLinear(sp, base, false, gu[0], c, d, E, pool);
      }
      store_->stats().compute_s += std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count() - t0;
    }
    store_->release_all();
    i += wave;
  }
  combine(n, x);
}

void MoeFfn::pregate(int layer, const float* x, int n, ThreadPool& pool) {
  const int next = layer + 1;
  if (next >= static_cast<int>(layers_.size())) return;
  const LayerWeights& L = layers_[static_cast<size_t>(next)];
  const int E = n_embd_, NE = cfg_.n_expert, K = cfg_.n_expert_used;
  const float* norm = reinterpret_cast<const float*>(L.ffn_norm.data);
  for (int t = 0; t < n; t++) af_rmsnorm_f32(x + static_cast<size_t>(t) * E, norm, pxn_.data() + static_cast<size_t>(t) * E, E, eps_);
  DenseMatmul(pxn_.data(), n, E, {{&L.moe.router, plogits_.data(), NE}}, xq_a_.data(), pool);
  // Experts predicted for more tokens first, so a pool too small for all keeps the likeliest.
  std::vector<int32_t> votes(static_cast<size_t>(NE), 0);
  for (int t = 0; t < n; t++) {
    RouteTopK(plogits_.data() + static_cast<size_t>(t) * NE, NE, K, cfg_.norm_weights, pred_sel_.data() + t * K, pred_w_.data() + t * K);
    for (int j = 0; j < K; j++) votes[pred_sel_[t * K + j]]++;
  }
  pred_layer_ = next;
  pred_n_ = n;
  std::vector<int32_t> order;
  for (int e = 0; e < NE; e++) {
    if (votes[e] > 0) order.push_back(e);
  }
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return votes[a] > votes[b]; });
  if (cfg_.n_ff_shexp > 0) order.insert(order.begin(), NE);  // taken by every token
  for (int32_t e : order) store_->prefetch(next, e);
}

void MoeFfn::score_prediction(int layer, int n) {
  if (pred_layer_ != layer || pred_n_ != n) {
    pred_layer_ = -1;
    return;
  }
  const int K = cfg_.n_expert_used;
  ExpertStats& st = store_->stats();
  for (int t = 0; t < n; t++) {
    int tp = 0;
    for (int j = 0; j < K; j++) {
      for (int i = 0; i < K; i++) tp += pred_sel_[t * K + j] == sel_[t * K + i];
    }
    st.pred_tp += tp;
    st.pred_fp += K - tp;
    st.pred_fn += K - tp;
  }
  pred_layer_ = -1;
}

}  // namespace activeflow
