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
inline F fabsv(F v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
inline F fmaxv(F a, F b) { return _mm256_max_ps(a, b); }
inline float fhmax(F v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
// See vec_avx512.h.
inline int fquant_i8(int8_t* dst, F v, bool ties_away) {
  __m256i q;
  if (ties_away) {
    const F t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const F up = _mm256_cmp_ps(fabsv(_mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const F one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    q = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
  } else {
    q = _mm256_cvtps_epi32(v);
  }
  alignas(32) int32_t l[8];
  _mm256_store_si256((__m256i*)l, q);
  int s = 0;
  for (int i = 0; i < 8; i++) dst[i] = (int8_t)l[i], s += l[i];
  return s;
}

// Packed-row kernels (simd_packed*.cpp): one 32-bit lane per weight row, 8 rows a vector
// (a packed group of 16 rows takes two passes). See vec_avx512.h.
constexpr int kPackLanes = 8;
constexpr int kPackCols32 = 4;
constexpr int kPackColsK = 2;
typedef __m256i PI;
typedef __m256 PF;
inline PI pload(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }
inline PI pzero() { return _mm256_setzero_si256(); }
inline PI pset1(int32_t v) { return _mm256_set1_epi32(v); }
inline PI pset1_8(int8_t v) { return _mm256_set1_epi8(v); }
inline PI pand(PI a, PI b) { return _mm256_and_si256(a, b); }
inline PI por(PI a, PI b) { return _mm256_or_si256(a, b); }
inline PI padd(PI a, PI b) { return _mm256_add_epi32(a, b); }
inline PI psub(PI a, PI b) { return _mm256_sub_epi32(a, b); }
// Per lane: a's two int16 halves times b's, summed (int32).
inline PI pmadd16(PI a, PI b) { return _mm256_madd_epi16(a, b); }
inline PI pmul(PI a, PI b) { return _mm256_mullo_epi32(a, b); }
inline PI pandor(PI a, PI m, PI b) { return _mm256_or_si256(_mm256_and_si256(a, m), b); }
template <int S> inline PI psrl16(PI v) { return _mm256_srli_epi16(v, S); }
template <int S> inline PI psll16(PI v) { return _mm256_slli_epi16(v, S); }
template <int S> inline PI psra32(PI v) { return _mm256_srai_epi32(v, S); }
inline PI pshuffle(PI v, PI ctl) { return _mm256_shuffle_epi8(v, ctl); }
inline PI pbcast16(const uint8_t* ctl) { return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)ctl)); }
// maddubs + madd: no saturation, as the codes are <= 63 and |x| <= 127.
inline PI pdot(PI acc, PI u, int32_t x4) {
  const PI p16 = _mm256_maddubs_epi16(u, _mm256_set1_epi32(x4));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}
// Signed weights: |w| against x carrying w's sign, so maddubs sees unsigned |w| <= 128.
struct PS8 {
  PI abs;
  PI sign;
};
inline PS8 pprep_s8(PI w) { return {_mm256_sign_epi8(w, w), w}; }
inline PI pdot_s8(PI acc, const PS8& w, int32_t x4) {
  const PI p16 = _mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(_mm256_set1_epi32(x4), w.sign));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}
inline PF pi2f(PI v) { return _mm256_cvtepi32_ps(v); }
inline PF phalves(const void* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
inline PF pfzero() { return _mm256_setzero_ps(); }
inline PF pfset1(float a) { return _mm256_set1_ps(a); }
inline PF pfmul(PF a, PF b) { return _mm256_mul_ps(a, b); }
inline PF pfmadd(PF a, PF b, PF c) { return _mm256_fmadd_ps(a, b, c); }
inline PF pfmsub(PF a, PF b, PF c) { return _mm256_fmsub_ps(a, b, c); }
inline void pfstore(float* p, PF v) { _mm256_storeu_ps(p, v); }

}  // namespace vec
}  // namespace

#endif
