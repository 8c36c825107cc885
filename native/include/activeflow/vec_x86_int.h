// 256-bit integer and 8-lane float helpers for the quantised dot kernels, shared by the avx2
// and avx512 paths. Define AF_VEC_VNNI before including to use AVX-512 VNNI dpbusd (its
// 256-bit form, as llama.cpp does) instead of maddubs + madd.
#ifndef ACTIVEFLOW_VEC_X86_INT_H
#define ACTIVEFLOW_VEC_X86_INT_H

#include <immintrin.h>
#include <stdint.h>

namespace {
namespace vec {

typedef __m256i I;  // 32 x int8 / 16 x int16 / 8 x int32
typedef __m256 F8;  // 8 x float, per-block accumulators

inline I izero() { return _mm256_setzero_si256(); }
inline I iload(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }
inline I iset1_8(int8_t v) { return _mm256_set1_epi8(v); }
inline I ior(I a, I b) { return _mm256_or_si256(a, b); }

// 16 packed bytes -> 32 codes 0..15: low nibbles (elements 0..15) then high (16..31).
inline I unpack_nibbles16(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128((const __m128i*)p);
  const I both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}
inline I lo_nibbles(I v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
inline I hi_nibbles(I v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }
// Bits k.. of each byte, masked by `mask`, moved up to bit 4: the high part of a 5-bit
// (mask 1) or 6-bit (mask 3) code.
inline I high_bits(I v, int k, int mask) {
  const I b = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(k)), _mm256_set1_epi8((char)mask));
  return _mm256_slli_epi16(b, 4);
}

// acc += sums of 4 adjacent u8 * s8 products per int32 lane.
inline I dot_u8s8(I acc, I u, I s) {
#if defined(AF_VEC_VNNI)
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  const I p16 = _mm256_maddubs_epi16(u, s);  // no saturation: |u| <= 63 here
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
#endif
}

// acc += (u * s summed in pairs) * scale, with scale_lo for bytes 0..15 and scale_hi for
// 16..31 (the K-quants' per-16 or per-32 sub-block scales). u must be <= 63.
inline I dot_u8s8_scaled(I acc, I u, I s, int scale_lo, int scale_hi) {
  const I p16 = _mm256_maddubs_epi16(u, s);
  const I sc = _mm256_set_m128i(_mm_set1_epi16((short)scale_hi), _mm_set1_epi16((short)scale_lo));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, sc));
}

// Signed x signed dot (Q8_0 weights). AVX2 moves the sign onto the activation so maddubs
// sees |w| <= 127 (no saturation). VNNI instead offsets w by 128 to make it unsigned; the
// kernel then subtracts kS8Offset * sum(x), which the Q8_1 activation carries.
struct S8W {
  I a;
  I b;
};
#if defined(AF_VEC_VNNI)
constexpr int kS8Offset = 128;
inline S8W prep_s8(I w) { return {_mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), w}; }
inline I dot_s8s8(I acc, const S8W& w, I x) { return _mm256_dpbusd_epi32(acc, w.a, x); }
#else
constexpr int kS8Offset = 0;
inline S8W prep_s8(I w) { return {_mm256_sign_epi8(w, w), w}; }
inline I dot_s8s8(I acc, const S8W& w, I x) {
  const I p16 = _mm256_maddubs_epi16(w.a, _mm256_sign_epi8(x, w.b));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}
#endif

// Folds four 8-lane int32 dots: lane c (c < 4) holds the low-128-bit half of dot c's sum
// and lane c + 4 the high half, so sum(dot c) = lane c + lane c + 4.
inline I fold4(I p0, I p1, I p2, I p3) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

inline F8 f8zero() { return _mm256_setzero_ps(); }
inline F8 f8set1(float a) { return _mm256_set1_ps(a); }
inline F8 f8load(const float* p) { return _mm256_loadu_ps(p); }
inline void f8store(float* p, F8 v) { _mm256_storeu_ps(p, v); }
inline F8 f8mul(F8 a, F8 b) { return _mm256_mul_ps(a, b); }
inline F8 i2f(I v) { return _mm256_cvtepi32_ps(v); }
inline F8 f8madd(F8 a, F8 b, F8 c) { return _mm256_fmadd_ps(a, b, c); }
inline float f8hsum(F8 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Software prefetch into L1 (weight streams too many for the hardware prefetcher alone).
inline void prefetch(const void* p) { _mm_prefetch((const char*)p, _MM_HINT_T0); }

// One IEEE half (block scale) to float.
inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
// Two adjacent halves (a block's d and m) with one conversion.
inline void h2f_pair(const uint16_t* p, float* a, float* b) {
  int32_t bits;
  __builtin_memcpy(&bits, p, 4);
  const __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
  *a = _mm_cvtss_f32(v);
  *b = _mm_cvtss_f32(_mm_movehdup_ps(v));
}

}  // namespace vec
}  // namespace

#endif
