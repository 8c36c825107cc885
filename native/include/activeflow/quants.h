// Quantised block formats, bit-compatible with GGML (ggml-common.h) so GGUF tensor bytes are
// used in place. Scales are IEEE halves stored as raw uint16_t.
#ifndef ACTIVEFLOW_QUANTS_H
#define ACTIVEFLOW_QUANTS_H

#include <stdint.h>

#define AF_QK 32     // elements per block of the 32-element formats
#define AF_QK_K 256  // elements per super-block of the K-quants
#define AF_K_SCALE_BYTES 12

// Q4_0: x = d * (q - 8); qs[i] low nibble is element i, high nibble element i + 16.
typedef struct {
  uint16_t d;
  uint8_t qs[AF_QK / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");

// Q4_1: x = d * q + m; nibble order as Q4_0.
typedef struct {
  uint16_t d;
  uint16_t m;
  uint8_t qs[AF_QK / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must be 20 bytes");

// Q8_0: x = d * q.
typedef struct {
  uint16_t d;
  int8_t qs[AF_QK];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");

// Q8_1 (activation only, our own layout, not GGML's 36-byte one): x = d * q and
// s = d * sum(q), kept as floats so the SIMD dot loads them without conversion; d holds a
// half's value, as GGML's Q8_0 / Q8_1 scales do. s lets a kernel use unsigned weight codes
// and subtract the offset once per block.
typedef struct {
  float d;
  float s;
  int8_t qs[AF_QK];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 40, "block_q8_1 must be 40 bytes");

// Q4_K: 8 sub-blocks of 32; x = d * sc_j * q - dmin * m_j, with 6-bit sc_j / m_j packed in
// scales[12] (see af_k_scale_min). qs: 4 groups of 32 bytes, each holding sub-block 2g in the
// low nibbles and 2g + 1 in the high nibbles.
typedef struct {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[AF_K_SCALE_BYTES];
  uint8_t qs[AF_QK_K / 2];
} block_q4_K;
static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");

// Q5_K: as Q4_K plus a fifth bit per element: bit (2g) of qh[l] for element l of sub-block
// 2g, bit (2g + 1) for sub-block 2g + 1.
typedef struct {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[AF_K_SCALE_BYTES];
  uint8_t qh[AF_QK_K / 8];
  uint8_t qs[AF_QK_K / 2];
} block_q5_K;
static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");

// Q6_K: 16 sub-blocks of 16; x = d * scales[j] * (q - 32), q = 4 low bits (ql) + 2 high (qh).
// Per half of 128 elements (ql += 64, qh += 32, scales += 8), element l + 32 * k (k = 0..3)
// takes ql[l + 32 * (k & 1)] nibble (k >> 1) and bits 2k..2k+1 of qh[l].
typedef struct {
  uint8_t ql[AF_QK_K / 2];
  uint8_t qh[AF_QK_K / 4];
  int8_t scales[AF_QK_K / 16];
  uint16_t d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");

// Q8_K (activation only): x = d * q; bsums[j] = sum of q over elements 16j..16j+15.
typedef struct {
  float d;
  int8_t qs[AF_QK_K];
  int16_t bsums[AF_QK_K / 16];
} block_q8_K;
static_assert(sizeof(block_q8_K) == 292, "block_q8_K must be 292 bytes");

#ifdef __cplusplus
// Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block: the
// first four live in the low 6 bits of bytes 0..7, the last four are split between the
// nibbles of bytes 8..11 and the top 2 bits of bytes 0..7.
static inline void af_k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
#endif

#endif
