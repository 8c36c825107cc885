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
