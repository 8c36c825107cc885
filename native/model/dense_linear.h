// Linear layers from dense weights in DRAM: the packed or file-layout rows times quantised
// activations, rows handed out to the pool in units.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "model/linear_source.h"
#include "model/threadpool.h"
#include "model/weights.h"

namespace activeflow {

// One output of a dense matmul: y[b * ldy + r] = w row r . x_b.
struct LinearOut {
  const Tensor* w;
  float* y;
  int64_t ldy;
};

// Rows per unit of work when a matrix of `rows` rows is shared by `threads` threads.
int64_t RowUnit(int64_t rows, int threads);

// y[b * ldy + r] = row r of w . x_b for rows [r0, r1) and b in [0, n): xq holds n inputs
// quantised for w's type, act bytes apart. Picks the kernel for w's layout (packed or file)
// and batch (one input or several).
void DenseRows(const Tensor& w, const uint8_t* xq, size_t act, int n, float* y, int64_t ldy, int64_t r0, int64_t r1);

// Quantises n input rows (stride floats) into xq once per weight type, then computes every
// output of `outs` in one pass over the pool. xq holds n rows of the widest activation.
void DenseMatmul(const float* x, int n, size_t stride, std::initializer_list<LinearOut> outs, uint8_t* xq,
                 ThreadPool& pool);

class DenseLinear final : public LinearSource {
 public:
  // layers outlives this; xq is the model's activation scratch ([n_batch][widest act bytes]).
  DenseLinear(const std::vector<LayerWeights>& layers, uint8_t* xq) : layers_(layers), xq_(xq) {}
  void linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys, const int64_t* ldys,
              ThreadPool& pool) override;

 private:
  const std::vector<LayerWeights>& layers_;
  uint8_t* xq_;
};

}  // namespace activeflow
