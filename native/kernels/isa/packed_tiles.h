// Driver of the packed-row kernels (kernels.h, AF_PACK_ROWS): covers whole groups and a
// batch with a kernel's tiles of one group x NC activations. Groups outer, so a group's
// weights come from memory once and stay in cache while every activation tile passes.
#ifndef ACTIVEFLOW_PACKED_TILES_H
#define ACTIVEFLOW_PACKED_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "activeflow/kernels.h"

namespace AF_NS {
namespace {

// How far ahead of the bytes being read a packed kernel prefetches. A group is one
// sequential stream, but the hardware prefetcher alone left a one-thread Q4_0 matvec at
// about three quarters of the memory bandwidth; 8-16 KB ahead measured best on a DRAM-sized
// matrix, 2 KB (the plain kernels' distance) was too short for Q4_K and Q6_K.
constexpr int kPackPrefetchBytes = 16384;

// K::tile<NC>(group, xs, n, y, ldy) writes y[c * ldy + j] for the group's rows j and the NC
// activations xs[c]; K::kCols is the widest tile. A batch tail takes halving tiles.
template <class K>
void packed_groups(const void* w, size_t rb, const void* xq, size_t xstride, float* y, int64_t ldy, int64_t n,
                   int64_t nb, int64_t groups) {
  constexpr int NC = K::kCols;
  const char* xp = (const char*)xq;
  for (int64_t g = 0; g < groups; g++) {
    const uint8_t* gp = (const uint8_t*)w + g * rb * AF_PACK_ROWS;
    float* yg = y + g * AF_PACK_ROWS;
    int64_t b = 0;
    const char* xs[NC];
    auto at = [&](int c) { return xp + (b + c) * xstride; };
    for (; b + NC <= nb; b += NC) {
      for (int c = 0; c < NC; c++) xs[c] = at(c);
      K::template tile<NC>(gp, xs, n, yg + b * ldy, ldy);
    }
    if constexpr (NC >= 8) {
      if (b + 4 <= nb) {
        for (int c = 0; c < 4; c++) xs[c] = at(c);
        K::template tile<4>(gp, xs, n, yg + b * ldy, ldy);
        b += 4;
      }
    }
    if constexpr (NC >= 4) {
      if (b + 2 <= nb) {
        for (int c = 0; c < 2; c++) xs[c] = at(c);
        K::template tile<2>(gp, xs, n, yg + b * ldy, ldy);
        b += 2;
      }
    }
    if constexpr (NC >= 2) {
      if (b < nb) {
        xs[0] = at(0);
        K::template tile<1>(gp, xs, n, yg + b * ldy, ldy);
        b += 1;
      }
    }
  }
}

}  // namespace
}  // namespace AF_NS

#endif
