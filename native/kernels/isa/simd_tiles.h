// Drivers that cover a row range (and a batch) with a kernel's NR x NC tiles; the row and
// batch tails fall back to 1-row / 1-activation tiles of the same kernel.
#ifndef ACTIVEFLOW_SIMD_TILES_H
#define ACTIVEFLOW_SIMD_TILES_H

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

namespace AF_NS {
namespace {

// How far ahead of the current block each weight row is prefetched. Without it a matvec
// over DRAM-resident weights (the 28 MB Q8_0 output head) reached ~5 GB/s of ~9 possible
// on one thread; 1.5-4 KB ahead measured best.
constexpr int kPrefetchBytes = 2048;

// Prefetches the cache lines of one super-block kPrefetchBytes ahead.
inline void prefetch_block(const void* p, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) vec::prefetch((const char*)p + kPrefetchBytes + off);
}

template <class K>
void matvec_tiles(const void* w, size_t rs, const void* xq, float* y, int64_t n, int64_t r0,
                  int64_t r1) {
  constexpr int NR = vec::kMatvecRows;
  const char* xs[1] = {(const char*)xq};
  const char* wp = (const char*)w;
  int64_t r = r0;
  for (; r + NR <= r1; r += NR) K::template tile<NR, 1>(wp + r * rs, rs, xs, n, y + (r - r0), 0);
  for (; r < r1; r++) K::template tile<1, 1>(wp + r * rs, rs, xs, n, y + (r - r0), 0);
}

// A kernel's matmul tile shape: its own kMatmulRows / kMatmulCols when it declares them
// (the AVX-512 4-bit tile, which also has 2-activation tiles for batch tails), else the
// ISA's (those kernels have only NC = kMatmulCols and NC = 1 tiles).
template <class K, class = void>
struct TileShape {
  static constexpr int kRows = vec::kMatmulRows, kCols = vec::kMatmulCols;
  static constexpr bool kPairs = false;
};
template <class K>
struct TileShape<K, std::void_t<decltype(K::kMatmulCols)>> {
  static constexpr int kRows = K::kMatmulRows, kCols = K::kMatmulCols;
  static constexpr bool kPairs = true;
};

// Rows outer, batch inner: NR weight rows stay in L1 while every activation passes over them.
// A batch tail is covered by 2-activation tiles (where the kernel has them) before
// 1-activation ones.
template <class K>
void matmul_tiles(const void* w, size_t rs, const void* xq, size_t xstride, float* y,
                  int64_t ldy, int64_t n, int64_t nb, int64_t r0, int64_t r1) {
  constexpr int NR = TileShape<K>::kRows, NC = TileShape<K>::kCols;
  const char* wp = (const char*)w;
  const char* xp = (const char*)xq;
  for (int64_t r = r0; r < r1;) {
    const bool full = r1 - r >= NR;
    const char* wr = wp + r * rs;
    int64_t b = 0;
    for (; b + NC <= nb; b += NC) {
      const char* xs[NC];
      for (int c = 0; c < NC; c++) xs[c] = xp + (b + c) * xstride;
      if (full) K::template tile<NR, NC>(wr, rs, xs, n, y + b * ldy + r, ldy);
      else K::template tile<1, NC>(wr, rs, xs, n, y + b * ldy + r, ldy);
    }
    if constexpr (NC > 2 && TileShape<K>::kPairs) {
      for (; b + 2 <= nb; b += 2) {
        const char* xs[2] = {xp + b * xstride, xp + (b + 1) * xstride};
        if (full) K::template tile<NR, 2>(wr, rs, xs, n, y + b * ldy + r, ldy);
        else K::template tile<1, 2>(wr, rs, xs, n, y + b * ldy + r, ldy);
      }
    }
    for (; b < nb; b++) {
      const char* xs[1] = {xp + b * xstride};
      if (full) K::template tile<NR, 1>(wr, rs, xs, n, y + b * ldy + r, ldy);
      else K::template tile<1, 1>(wr, rs, xs, n, y + b * ldy + r, ldy);
    }
    r += full ? NR : 1;
  }
}

}  // namespace
}  // namespace AF_NS

#endif
