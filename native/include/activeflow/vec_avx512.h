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
inline F fabsv(F v) { return _mm512_abs_ps(v); }
inline F fmaxv(F a, F b) { return _mm512_max_ps(a, b); }
inline float fhmax(F v) { return _mm512_reduce_max_ps(v); }
// Rounds each lane to an integer (ties away from zero as roundf, or to even as lrintf),
// stores them as kF int8 (|v| <= 127) and returns their sum.
inline int fquant_i8(int8_t* dst, F v, bool ties_away) {
  __m512i q;
  if (ties_away) {
    // trunc(v) + sign(v) where |v - trunc(v)| >= 0.5: exactly roundf (v - trunc(v) is exact).
    const F t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const F one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)),
                                                      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u))));
    q = _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one));
  } else {
    q = _mm512_cvtps_epi32(v);
  }
  _mm_storeu_si128((__m128i*)dst, _mm512_cvtepi32_epi8(q));
  return _mm512_reduce_add_epi32(q);
}

// Packed-row kernels (simd_packed*.cpp): one 32-bit lane per weight row, 16 rows a vector.
// A lane holds 4 bytes of its row (codes or sub-scales), or an int32 / float of that row.
constexpr int kPackLanes = 16;
// Activations per packed tile: the 32-element formats keep 8 unpacked code vectors and 8
// accumulators in the 32 registers; the K-quants 16 code vectors and 4 accumulators.
constexpr int kPackCols32 = 8;
constexpr int kPackColsK = 4;
typedef __m512i PI;
typedef __m512 PF;
inline PI pload(const void* p) { return _mm512_loadu_si512(p); }
inline PI pzero() { return _mm512_setzero_si512(); }
inline PI pset1(int32_t v) { return _mm512_set1_epi32(v); }
inline PI pset1_8(int8_t v) { return _mm512_set1_epi8(v); }
inline PI pand(PI a, PI b) { return _mm512_and_si512(a, b); }
inline PI por(PI a, PI b) { return _mm512_or_si512(a, b); }
inline PI padd(PI a, PI b) { return _mm512_add_epi32(a, b); }
inline PI psub(PI a, PI b) { return _mm512_sub_epi32(a, b); }
// Per lane: a's two int16 halves times b's, summed (int32).
inline PI pmadd16(PI a, PI b) { return _mm512_madd_epi16(a, b); }
inline PI pmul(PI a, PI b) { return _mm512_mullo_epi32(a, b); }
// a & m | b (bitwise; one ternary-logic instruction).
inline PI pandor(PI a, PI m, PI b) { return _mm512_ternarylogic_epi32(a, m, b, 0xEA); }
// Shifts of 16-bit units: callers mask so bits crossing a byte boundary drop out.
template <int S> inline PI psrl16(PI v) { return _mm512_srli_epi16(v, S); }
template <int S> inline PI psll16(PI v) { return _mm512_slli_epi16(v, S); }
template <int S> inline PI psra32(PI v) { return _mm512_srai_epi32(v, S); }
// Bytes rearranged within each 16-byte lane by a pshufb control (0x80 = zero).
inline PI pshuffle(PI v, PI ctl) { return _mm512_shuffle_epi8(v, ctl); }
inline PI pbcast16(const uint8_t* ctl) { return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)ctl)); }
// acc += per lane, the dot of its 4 unsigned bytes u with the 4 signed bytes x4.
inline PI pdot(PI acc, PI u, int32_t x4) { return _mm512_dpbusd_epi32(acc, u, _mm512_set1_epi32(x4)); }
// Signed weight bytes (Q8_0): VNNI needs unsigned, so the weights are offset by 128 and
// the kernel subtracts kS8Offset * sum(x), which the activation carries.
struct PS8 {
  PI u;
};
inline PS8 pprep_s8(PI w) { return {_mm512_xor_si512(w, _mm512_set1_epi8((char)0x80))}; }
inline PI pdot_s8(PI acc, const PS8& w, int32_t x4) { return pdot(acc, w.u, x4); }
inline PF pi2f(PI v) { return _mm512_cvtepi32_ps(v); }
inline PF phalves(const void* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
inline PF pfzero() { return _mm512_setzero_ps(); }
inline PF pfset1(float a) { return _mm512_set1_ps(a); }
inline PF pfmul(PF a, PF b) { return _mm512_mul_ps(a, b); }
inline PF pfmadd(PF a, PF b, PF c) { return _mm512_fmadd_ps(a, b, c); }
inline PF pfmsub(PF a, PF b, PF c) { return _mm512_fmsub_ps(a, b, c); }
inline void pfstore(float* p, PF v) { _mm512_storeu_ps(p, v); }

}  // namespace vec
}  // namespace

#endif
