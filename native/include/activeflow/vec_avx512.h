// AVX-512 (F, BW, VL, DQ, VNNI): 16-lane floats for the float kernels; the quantised dots
// stay 256-bit but use VNNI dpbusd and the 32 vector registers for bigger tiles, except the
// Q4_0/Q4_1 matmul tile (K32Q4Z in simd_quant.cpp), which dots zmm-wide.
#ifndef ACTIVEFLOW_VEC_AVX512_H
#define ACTIVEFLOW_VEC_AVX512_H

// GCC 12 warns about _mm512_undefined_* inside its own intrinsics headers (a known false
// positive); keep -Wall output readable.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define AF_VEC_VNNI 1
#include "activeflow/vec_x86_int.h"

namespace {
namespace vec {

constexpr int kF = 16;
typedef __m512 F;

constexpr int kMatvecRows = 4;
constexpr int kMatmulRows = 4;
constexpr int kMatmulCols = 4;

inline F fzero() { return _mm512_setzero_ps(); }
inline F fset1(float a) { return _mm512_set1_ps(a); }
inline F fload(const float* p) { return _mm512_loadu_ps(p); }
inline F fload(const uint16_t* p, bool bf16) {
  const __m256i h = _mm256_loadu_si256((const __m256i*)p);
  if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}
inline void fstore(float* p, F v) { _mm512_storeu_ps(p, v); }
inline F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
inline F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
inline F fadd(F a, F b) { return _mm512_add_ps(a, b); }
inline float fhsum(F v) { return _mm512_reduce_add_ps(v); }

}  // namespace vec
}  // namespace

#endif
