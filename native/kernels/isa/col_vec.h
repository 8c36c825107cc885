// Vectors of the column kernels (col_axpy.cpp), one section per ISA: float vector ops and the
// decoders that turn one sub-block of a column's codes (or float values) into float vectors
// in element order. Every decoder is exact (small integers and IEEE halves convert exactly),
// so the ISAs differ only in vector width, never in the values fed to the FMAs.
#ifndef ACTIVEFLOW_COL_VEC_H
#define ACTIVEFLOW_COL_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "activeflow/kernels.h"

#if defined(AF_ISA_SCALAR)

namespace {
namespace colv {

constexpr int kF = 1;  // floats per F
typedef float F;

inline F zero() { return 0.0f; }
inline F set1(float a) { return a; }
inline F madd(F a, F b, F c) { return fmaf(a, b, c); }
inline F add(F a, F b) { return a + b; }
inline F load(const float* p) { return *p; }
inline void store(float* p, F v) { *p = v; }
inline float h2f(uint16_t h) { return af_fp16_to_fp32(h); }
// Two adjacent halves (a block's d and m) to floats.
inline void h2f2(const uint8_t* p, float* d, float* m) {
  *d = af_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8));
  *m = af_fp16_to_fp32((uint16_t)(p[2] | p[3] << 8));
}

// Q4_K/Q5_K sub-block scales: d[j] = dd * u[j], m[j] = mdm * u[8 + j] for the 16 bytes u.
inline void kscales(const uint32_t* u, float dd, float mdm, float* d, float* m) {
  uint8_t b[16];
  memcpy(b, u, 16);
  for (int j = 0; j < 8; j++) {
    d[j] = dd * (float)b[j];
    m[j] = mdm * (float)b[8 + j];
  }
}
// Q6_K sub-block scales: d[t] = dd * (int8)s[t], t < 16.
inline void scales16(const uint8_t* s, float dd, float* d) {
  for (int t = 0; t < 16; t++) d[t] = dd * (float)(int8_t)s[t];
}
// Q4_0: 16 bytes, low nibbles are elements 0..15, high 16..31; code q - 8.
inline void q4_0(const uint8_t* qs, F* out) {
  for (int k = 0; k < 16; k++) {
    out[k] = (float)((qs[k] & 15) - 8);
    out[k + 16] = (float)((qs[k] >> 4) - 8);
  }
}
// Q4_1: as Q4_0, unsigned codes.
inline void q4_1(const uint8_t* qs, F* out) {
  for (int k = 0; k < 16; k++) {
    out[k] = (float)(qs[k] & 15);
    out[k + 16] = (float)(qs[k] >> 4);
  }
}
inline void q8_0(const int8_t* qs, F* out) {
  for (int k = 0; k < 32; k++) out[k] = (float)qs[k];
}
// Q4_K sub-block: the low (hi = 0) or high (hi = 1) nibbles of 32 bytes.
inline void q4k(const uint8_t* qs, int hi, F* out) {
  for (int k = 0; k < 32; k++) out[k] = (float)((qs[k] >> (4 * hi)) & 15);
}
// Q5_K sub-block: nibbles as Q4_K plus bit `bit` of qh[k] as bit 4.
inline void q5k(const uint8_t* qs, const uint8_t* qh, int hi, int bit, F* out) {
  for (int k = 0; k < 32; k++) {
    out[k] = (float)(((qs[k] >> (4 * hi)) & 15) | (((qh[k] >> bit) & 1) << 4));
  }
}
// Q6_K sub-block of 16: nibble (ql >> shift) & 15, bits (qh >> qshift) & 3 on top; code q - 32.
inline void q6k(const uint8_t* ql, const uint8_t* qh, int shift, int qshift, F* out) {
  for (int k = 0; k < 16; k++) {
    out[k] = (float)((((ql[k] >> shift) & 15) | (((qh[k] >> qshift) & 3) << 4)) - 32);
  }
}
inline void f32(const float* p, F* out) {
  for (int k = 0; k < 32; k++) out[k] = p[k];
}
inline void f16(const uint16_t* p, F* out) {
  for (int k = 0; k < 32; k++) out[k] = af_fp16_to_fp32(p[k]);
}
inline void bf16(const uint16_t* p, F* out) {
  for (int k = 0; k < 32; k++) out[k] = af_bf16_to_fp32(p[k]);
}

}  // namespace colv
}  // namespace

#else  // AVX2 / AVX-512

#include "activeflow/vec.h"

namespace {
namespace colv {

constexpr int kF = vec::kF;
typedef vec::F F;

inline F zero() { return vec::fzero(); }
inline F set1(float a) { return vec::fset1(a); }
inline F madd(F a, F b, F c) { return vec::fmadd(a, b, c); }
inline F add(F a, F b) { return vec::fadd(a, b); }
inline F load(const float* p) { return vec::fload(p); }
inline void store(float* p, F v) { vec::fstore(p, v); }
inline float h2f(uint16_t h) { return vec::h2f(h); }
// Two adjacent halves (a block's d and m) to floats with one conversion.
inline void h2f2(const uint8_t* p, float* d, float* m) {
  int32_t v;
  memcpy(&v, p, 4);
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(v));
  *d = _mm_cvtss_f32(f);
  *m = _mm_cvtss_f32(_mm_movehdup_ps(f));
}

// 32 signed byte codes (element order) -> 32 / kF float vectors.
inline void s8x32(__m256i v, F* out) {
  const __m128i lo = _mm256_castsi256_si128(v);
  const __m128i hi = _mm256_extracti128_si256(v, 1);
#if defined(AF_ISA_AVX512)
  out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));
  out[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
#else
  out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
  out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
  out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
  out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
#endif
}
// 16 signed byte codes -> 16 / kF float vectors.
inline void s8x16(__m128i v, F* out) {
#if defined(AF_ISA_AVX512)
  out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v));
#else
  out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
  out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
#endif
}

// Q4_K/Q5_K sub-block scales: d[j] = dd * u[j], m[j] = mdm * u[8 + j] for the 16 bytes u.
inline void kscales(const uint32_t* u, float dd, float mdm, float* d, float* m) {
  const __m128i x = _mm_loadu_si128((const __m128i*)u);
  _mm256_storeu_ps(d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x)), _mm256_set1_ps(dd)));
  _mm256_storeu_ps(m, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(x, 8))),
                                    _mm256_set1_ps(mdm)));
}
inline void scales16(const uint8_t* s, float dd, float* d) {
  const __m128i x = _mm_loadu_si128((const __m128i*)s);
  const __m256 f = _mm256_set1_ps(dd);
  _mm256_storeu_ps(d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x)), f));
  _mm256_storeu_ps(d + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(x, 8))), f));
}
// Q4_0 / Q4_1: widen the 16 bytes to int32 lanes first, so the nibbles split with a mask
// and a shift (no byte shuffles). AVX-512 maps nibble -> float with one vpermps from a
// 16-entry table (vpermps reads only the low 4 bits of each index).
#if defined(AF_ISA_AVX512)
inline void q4(const uint8_t* qs, float base, F* out) {
  const __m512 table = _mm512_add_ps(_mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                     _mm512_set1_ps(base));
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)qs));
  out[0] = _mm512_permutexvar_ps(v, table);
  out[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
}
#else
inline void q4(const uint8_t* qs, float base, F* out) {
  const __m256i m = _mm256_set1_epi32(15), b = _mm256_set1_epi32((int)base);
  const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)qs));
  const __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(qs + 8)));
  out[0] = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_and_si256(v0, m), b));
  out[1] = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_and_si256(v1, m), b));
  out[2] = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(v0, 4), b));
  out[3] = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(v1, 4), b));
}
#endif
inline void q4_0(const uint8_t* qs, F* out) { q4(qs, -8.0f, out); }
inline void q4_1(const uint8_t* qs, F* out) {
#if defined(AF_ISA_AVX512)
  q4(qs, 0.0f, out);
#else
  const __m256i m = _mm256_set1_epi32(15);
  const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)qs));
  const __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(qs + 8)));
  out[0] = _mm256_cvtepi32_ps(_mm256_and_si256(v0, m));
  out[1] = _mm256_cvtepi32_ps(_mm256_and_si256(v1, m));
  out[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4));
  out[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4));
#endif
}
#if defined(AF_ISA_AVX512)
inline void q8_0(const int8_t* qs, F* out) {
  out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)qs)));
  out[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(qs + 16))));
}
// Q4_K sub-block: the low (hi = 0) or high (hi = 1) nibbles of 32 bytes, widened first as q4.
inline void q4k(const uint8_t* qs, int hi, F* out) {
  const __m512 table = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m128i sh = _mm_cvtsi32_si128(4 * hi);
  for (int v = 0; v < 2; v++) {
    const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(qs + 16 * v)));
    out[v] = _mm512_permutexvar_ps(_mm512_srl_epi32(w, sh), table);
  }
}
#else
inline void q8_0(const int8_t* qs, F* out) {
  for (int v = 0; v < 4; v++) {
    out[v] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(qs + 8 * v))));
  }
}
inline void q4k(const uint8_t* qs, int hi, F* out) {
  const __m128i sh = _mm_cvtsi32_si128(4 * hi);
  for (int v = 0; v < 4; v++) {
    const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(qs + 8 * v)));
    out[v] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(w, sh), _mm256_set1_epi32(15)));
  }
}
#endif
inline void q5k(const uint8_t* qs, const uint8_t* qh, int hi, int bit, F* out) {
  const __m256i v = vec::iload(qs);
  const __m256i n = hi ? vec::hi_nibbles(v) : vec::lo_nibbles(v);
  s8x32(_mm256_or_si256(n, vec::high_bits(vec::iload(qh), bit, 1)), out);
}
inline void q6k(const uint8_t* ql, const uint8_t* qh, int shift, int qshift, F* out) {
  const __m128i l = _mm_and_si128(_mm_srl_epi16(_mm_loadu_si128((const __m128i*)ql), _mm_cvtsi32_si128(shift)),
                                  _mm_set1_epi8(15));
  const __m128i h = _mm_and_si128(_mm_srl_epi16(_mm_loadu_si128((const __m128i*)qh), _mm_cvtsi32_si128(qshift)),
                                  _mm_set1_epi8(3));
  s8x16(_mm_sub_epi8(_mm_or_si128(l, _mm_slli_epi16(h, 4)), _mm_set1_epi8(32)), out);
}
inline void f32(const float* p, F* out) {
  for (int v = 0; v < 32 / kF; v++) out[v] = vec::fload(p + v * kF);
}
inline void f16(const uint16_t* p, F* out) {
  for (int v = 0; v < 32 / kF; v++) out[v] = vec::fload(p + v * kF, false);
}
inline void bf16(const uint16_t* p, F* out) {
  for (int v = 0; v < 32 / kF; v++) out[v] = vec::fload(p + v * kF, true);
}

}  // namespace colv
}  // namespace

#endif

#endif
