// AVX2 + FMA + F16C vectors: 8-lane floats for the float kernels, plus the shared
// 256-bit integer helpers (maddubs + madd dots).
#ifndef ACTIVEFLOW_VEC_AVX2_H
#define ACTIVEFLOW_VEC_AVX2_H

#include "activeflow/vec_x86_int.h"

namespace {
namespace vec {

constexpr int kF = 8;  // floats per F
typedef __m256 F;

// Tile shape of the quantised kernels: rows per matvec pass, and rows x activations per
// matmul tile (16 ymm registers bound the accumulators).
constexpr int kMatvecRows = 4;
constexpr int kMatmulRows = 2;
constexpr int kMatmulCols = 4;

inline F fzero() { return _mm256_setzero_ps(); }
inline F fset1(float a) { return _mm256_set1_ps(a); }
inline F fload(const float* p) { return _mm256_loadu_ps(p); }
inline F fload(const uint16_t* p, bool bf16) {
  const __m128i h = _mm_loadu_si128((const __m128i*)p);
  if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}
inline void fstore(float* p, F v) { _mm256_storeu_ps(p, v); }
inline F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
inline F fmul(F a, F b) { return _mm256_mul_ps(a, b); }
inline F fadd(F a, F b) { return _mm256_add_ps(a, b); }
inline float fhsum(F v) { return f8hsum(v); }

}  // namespace vec
}  // namespace

#endif
