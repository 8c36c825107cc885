// Where the forward pass gets its linear layers from: dense weights mapped in DRAM
// (DenseLinear) or active columns swapped from flash (ColumnStore). The pass is written once
// against this interface; the storage decides how W x is computed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/threadpool.h"

namespace activeflow {

class LinearSource {
 public:
  virtual ~LinearSource() = default;
  // ys[t] ([n][ldys[t]]) = W_t x for every tensor t of (layer, site), in the site's tensor
  // order (attn_in: q, k, v; attn_out: o; ffn_in: gate, up; ffn_out: down). x is [n][stride],
  // already thresholded (zeros are inactive).
  virtual void linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
                      const int64_t* ldys, ThreadPool& pool) = 0;
};

}  // namespace activeflow
