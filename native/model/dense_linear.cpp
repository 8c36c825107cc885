#include "model/dense_linear.h"

#include <algorithm>
#include <string>

#include "activeflow/kernels.h"
#include "model/model_error.h"
#include "model/site.h"

namespace activeflow {

namespace {

// Rows per unit of work are rounded to this so SIMD tiles and packed groups stay whole.
constexpr int64_t kRowAlign = 16;
// Units of rows per thread and matrix: enough that a thread slowed by memory contention
// leaves work for the other, few enough that each unit is a long sequential read.
constexpr int64_t kUnitsPerThread = 8;

}  // namespace

void DenseMatmul(const float* x, int n, size_t in_stride, std::initializer_list<LinearOut> outs, uint8_t* xq,
                 ThreadPool& pool) {
  // All outputs of one call share the input and (in every model we load) the weight type;
  // quantise the input once per distinct type.
  const Tensor& w0 = *outs.begin()->w;
  const int type = w0.type;
  const int64_t n_in = w0.ne0;
  const size_t act = af_act_bytes(type, n_in);
  for (const auto& o : outs) {
    if (o.w->type != type || o.w->ne0 != n_in) {
      // Mixed types: fall back to one call per output.
      if (outs.size() > 1) {
        for (const auto& single : outs) DenseMatmul(x, n, in_stride, {single}, xq, pool);
        return;
      }
    }
  }
  if (n < 2 * pool.size()) {
    // A decode token: one activation is quicker to quantise here than to hand out, and it
    // saves the pool a fork-join per linear.
    for (int b = 0; b < n; b++) af_quantize_act(type, x + b * in_stride, xq + b * act, n_in);
  } else {
    pool.for_units(n, [&](int64_t b, int) { af_quantize_act(type, x + b * in_stride, xq + b * act, n_in); });
  }
  // Rows are handed out in units (ThreadPool::for_units) rather than split evenly up front:
  // the threads' memory bandwidth is not evenly shared, a thread done early takes more units
  // instead of waiting at the join, and a thread the OS has descheduled is not waited for.
  const int nth_all = pool.size();
  const LinearOut* ov = outs.begin();
  const int nout = static_cast<int>(outs.size());
  constexpr int kMaxOuts = 4;
  if (nout > kMaxOuts) throw ModelError("NATIVE", "linear: more than 4 outputs in one call");
  int64_t unit[kMaxOuts], first[kMaxOuts + 1];
  first[0] = 0;
  for (int i = 0; i < nout; i++) {
    const int64_t rows = ov[i].w->ne1;
    unit[i] = RowUnit(rows, nth_all);
    first[i + 1] = first[i] + (rows + unit[i] - 1) / unit[i];
  }
  pool.for_units(first[nout], [&](int64_t u, int) {
    int i = 0;
    while (u >= first[i + 1]) i++;
    const LinearOut& o = ov[i];
    const Tensor& w = *o.w;
    const int64_t r0 = (u - first[i]) * unit[i], r1 = std::min(w.ne1, r0 + unit[i]);
    DenseRows(w, xq, act, n, o.y, o.ldy, r0, r1);
  });
}

int64_t RowUnit(int64_t rows, int threads) {
  return threads == 1 ? rows : std::max<int64_t>(kRowAlign, (rows / (kUnitsPerThread * threads)) / kRowAlign * kRowAlign);
}

void DenseRows(const Tensor& w, const uint8_t* xq, size_t act, int n, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (w.packed && n == 1) {
    af_matvec_packed(w.type, w.data, w.row_bytes, w.ne1, xq, y + r0, w.ne0, r0, r1);
  } else if (w.packed) {
    af_matmul_packed(w.type, w.data, w.row_bytes, w.ne1, xq, act, y, ldy, w.ne0, n, r0, r1);
  } else if (n == 1) {
    af_matvec(w.type, w.data, w.row_bytes, xq, y + r0, w.ne0, r0, r1);
  } else {
    af_matmul(w.type, w.data, w.row_bytes, xq, act, y, ldy, w.ne0, n, r0, r1);
  }
}

void DenseLinear::linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
                         const int64_t* ldys, ThreadPool& pool) {
  const LayerWeights& L = layers_[static_cast<size_t>(layer)];
  switch (site) {
    case kAttnIn:
      DenseMatmul(x, n, stride, {{&L.wq, ys[0], ldys[0]}, {&L.wk, ys[1], ldys[1]}, {&L.wv, ys[2], ldys[2]}}, xq_, pool);
      return;
    case kAttnOut:
      DenseMatmul(x, n, stride, {{&L.wo, ys[0], ldys[0]}}, xq_, pool);
      return;
    case kFfnIn:
      DenseMatmul(x, n, stride, {{&L.gate, ys[0], ldys[0]}, {&L.up, ys[1], ldys[1]}}, xq_, pool);
      return;
    case kFfnOut:
      DenseMatmul(x, n, stride, {{&L.down, ys[0], ldys[0]}}, xq_, pool);
      return;
    default:
      throw ModelError("NATIVE", "linear: no site " + std::to_string(site));
  }
}

}  // namespace activeflow
