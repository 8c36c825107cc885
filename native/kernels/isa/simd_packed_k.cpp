// Packed-row tiles of the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K activations. As in
// simd_packed.cpp one lane per row: a dot instruction sums 4 codes of 16 rows (AVX-512),
// each sub-block's integer dot is scaled by its row's sub-scale in the lane (the packed
// sub-scales arrive as bytes of the same lanes), and the super-block's float scales are
// applied once per vector.
#include "kernels/isa/isa.h"
#if !defined(AF_ISA_SCALAR)

#include <string.h>

#include "activeflow/kernels.h"
#include "activeflow/quants.h"
#include "activeflow/vec.h"
#include "kernels/isa/packed_tiles.h"
#include "kernels/pack_layout.h"

namespace AF_NS {
namespace {

using namespace vec;

// pshufb controls, per 32-bit lane k of a 16-byte lane: byte j of the lane moved to bits
// 0..7 (kByte) or 24..31 (kTop, for sign extension); bytes 0, 1 (kPair01) or 2, 3 (kPair23)
// moved to the low bytes of the two 16-bit halves.
alignas(16) const uint8_t kByte[4][16] = {
    {0, 0x80, 0x80, 0x80, 4, 0x80, 0x80, 0x80, 8, 0x80, 0x80, 0x80, 12, 0x80, 0x80, 0x80},
    {1, 0x80, 0x80, 0x80, 5, 0x80, 0x80, 0x80, 9, 0x80, 0x80, 0x80, 13, 0x80, 0x80, 0x80},
    {2, 0x80, 0x80, 0x80, 6, 0x80, 0x80, 0x80, 10, 0x80, 0x80, 0x80, 14, 0x80, 0x80, 0x80},
    {3, 0x80, 0x80, 0x80, 7, 0x80, 0x80, 0x80, 11, 0x80, 0x80, 0x80, 15, 0x80, 0x80, 0x80}};
alignas(16) const uint8_t kTop[4][16] = {
    {0x80, 0x80, 0x80, 0, 0x80, 0x80, 0x80, 4, 0x80, 0x80, 0x80, 8, 0x80, 0x80, 0x80, 12},
    {0x80, 0x80, 0x80, 1, 0x80, 0x80, 0x80, 5, 0x80, 0x80, 0x80, 9, 0x80, 0x80, 0x80, 13},
    {0x80, 0x80, 0x80, 2, 0x80, 0x80, 0x80, 6, 0x80, 0x80, 0x80, 10, 0x80, 0x80, 0x80, 14},
    {0x80, 0x80, 0x80, 3, 0x80, 0x80, 0x80, 7, 0x80, 0x80, 0x80, 11, 0x80, 0x80, 0x80, 15}};
alignas(16) const uint8_t kPair01[16] = {0, 0x80, 1, 0x80, 4, 0x80, 5, 0x80, 8, 0x80, 9, 0x80, 12, 0x80, 13, 0x80};
alignas(16) const uint8_t kPair23[16] = {2, 0x80, 3, 0x80, 6, 0x80, 7, 0x80, 10, 0x80, 11, 0x80, 14, 0x80, 15, 0x80};

// Bit B of each byte moved to bit 4 (the fifth bit of a Q5_K code), other bits cleared by
// the caller's mask.
template <int B>
inline PI bit_to4(PI h) {
  if constexpr (B <= 4) return psll16<4 - B>(h);
  else return psrl16<B - 4>(h);
}

// Prefetches the cache line kPackPrefetchBytes past p.
inline void ahead(const uint8_t* p) { prefetch(p + kPackPrefetchBytes); }

// Q4_K / Q5_K: x = d * sc_j * q - dmin * m_j per 32-element sub-block j.
template <bool FIVE>
struct PackedQ45K {
  static constexpr int TYPE = FIVE ? AF_Q5_K : AF_Q4_K;
  static constexpr int kCols = kPackColsK;
  static constexpr int kBlock = af_packed_block_bytes(TYPE);
  static constexpr int kDmin = af_packed_offset(TYPE, 1);
  static constexpr int kScales = af_packed_offset(TYPE, 2);
  static constexpr int kQh = af_packed_offset(TYPE, 3);  // Q5_K only
  static constexpr int kQs = af_packed_offset(TYPE, FIVE ? 4 : 3);

  // Codes of sub-blocks 2gi (lo) and 2gi + 1 (hi) from chunk cc of the super-block at b.
  template <int GI>
  static void codes(const uint8_t* b, int lane0, int cc, PI lo4, PI* lo, PI* hi) {
    const uint8_t* p = b + kQs + (8 * GI + cc) * 64 + lane0 * 4;
    ahead(p);
    const PI v = pload(p);
    *lo = pand(v, lo4);
    *hi = pand(psrl16<4>(v), lo4);
    if constexpr (FIVE) {
      const PI h = pload(b + kQh + cc * 64 + lane0 * 4);
      const PI bit4 = pset1_8(0x10);
      *lo = pandor(bit_to4<2 * GI>(h), bit4, *lo);
      *hi = pandor(bit_to4<2 * GI + 1>(h), bit4, *hi);
    }
  }

  template <int GI, int NC>
  static void pair(const uint8_t* b, int lane0, const block_q8_K* const* xb, PI slo, PI shi, PI* isum) {
    const PI lo4 = pset1_8(0x0F);
    PI lo[8], hi[8];
    for (int cc = 0; cc < 8; cc++) codes<GI>(b, lane0, cc, lo4, &lo[cc], &hi[cc]);
    const PI src = GI < 2 ? slo : shi;
    const PI sl = pshuffle(src, pbcast16(kByte[(2 * GI) % 4]));
    const PI sh = pshuffle(src, pbcast16(kByte[(2 * GI + 1) % 4]));
    for (int c = 0; c < NC; c++) {
      int32_t x4[16];
      memcpy(x4, xb[c]->qs + 64 * GI, sizeof x4);
      PI dl = pzero(), dh = pzero();
      for (int cc = 0; cc < 8; cc++) {
        dl = pdot(dl, lo[cc], x4[cc]);
        dh = pdot(dh, hi[cc], x4[8 + cc]);
      }
      isum[c] = padd(isum[c], padd(pmul(dl, sl), pmul(dh, sh)));
    }
  }

  template <int NC>
  static void tile(const uint8_t* g, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    const int64_t nsb = n / AF_QK_K;
    const PI m6 = pset1_8(0x3F), m4 = pset1_8(0x0F), m30 = pset1_8(0x30);
    for (int pass = 0; pass < AF_PACK_ROWS / kPackLanes; pass++) {
      const int lane0 = pass * kPackLanes;
      PF acc[NC];
      for (int c = 0; c < NC; c++) acc[c] = pfzero();
      for (int64_t i = 0; i < nsb; i++) {
        const uint8_t* b = g + i * kBlock;
        const block_q8_K* xb[NC];
        for (int c = 0; c < NC; c++) xb[c] = (const block_q8_K*)xs[c] + i;
        // Lane bytes: s0 = scales[0..3], s1 = [4..7], s2 = [8..11] of the lane's row;
        // decoded as af_k_scale_min does: sub-scales 0..3 / 4..7 and mins 0..3 / 4..7.
        const PI s0 = pload(b + kScales + lane0 * 4);
        const PI s1 = pload(b + kScales + 64 + lane0 * 4);
        const PI s2 = pload(b + kScales + 128 + lane0 * 4);
        const PI slo = pand(s0, m6);
        const PI shi = por(pand(s2, m4), pand(psrl16<2>(s0), m30));
        const PI mlo = pand(s1, m6);
        const PI mhi = por(pand(psrl16<4>(s2), m4), pand(psrl16<2>(s1), m30));
        const PF dw = phalves(b + lane0 * 2);
        const PF dmw = phalves(b + kDmin + lane0 * 2);
        {
          const PI p01 = pbcast16(kPair01), p23 = pbcast16(kPair23);
          const PI mp0 = pshuffle(mlo, p01), mp1 = pshuffle(mlo, p23);
          const PI mp2 = pshuffle(mhi, p01), mp3 = pshuffle(mhi, p23);
          for (int c = 0; c < NC; c++) {
            // sum_j m_j * (bsums[2j] + bsums[2j + 1]), two j per 16-bit multiply-add.
            int32_t bp[4];
            for (int p = 0; p < 4; p++) {
              const int16_t b0 = (int16_t)(xb[c]->bsums[4 * p] + xb[c]->bsums[4 * p + 1]);
              const int16_t b1 = (int16_t)(xb[c]->bsums[4 * p + 2] + xb[c]->bsums[4 * p + 3]);
              bp[p] = (int32_t)(uint16_t)b0 | (int32_t)((uint32_t)(uint16_t)b1 << 16);
            }
            const PI summ = padd(padd(pmadd16(mp0, pset1(bp[0])), pmadd16(mp1, pset1(bp[1]))),
                                 padd(pmadd16(mp2, pset1(bp[2])), pmadd16(mp3, pset1(bp[3]))));
            acc[c] = pfmadd(pfmul(dmw, pfset1(-xb[c]->d)), pi2f(summ), acc[c]);
          }
        }
        PI isum[NC];
        for (int c = 0; c < NC; c++) isum[c] = pzero();
        pair<0, NC>(b, lane0, xb, slo, shi, isum);
        pair<1, NC>(b, lane0, xb, slo, shi, isum);
        pair<2, NC>(b, lane0, xb, slo, shi, isum);
        pair<3, NC>(b, lane0, xb, slo, shi, isum);
        for (int c = 0; c < NC; c++) acc[c] = pfmadd(pfmul(dw, pfset1(xb[c]->d)), pi2f(isum[c]), acc[c]);
      }
      for (int c = 0; c < NC; c++) pfstore(y + c * ldy + lane0, acc[c]);
    }
  }
};

// Q6_K: x = d * sc_G * (q - 32) per 16-element group G, q = 4 bits of ql + 2 of qh.
struct PackedQ6K {
  static constexpr int kCols = kPackColsK;
  static constexpr int kBlock = af_packed_block_bytes(AF_Q6_K);
  static constexpr int kScales = af_packed_offset(AF_Q6_K, 1);
  static constexpr int kQl = af_packed_offset(AF_Q6_K, 2);
  static constexpr int kQh = af_packed_offset(AF_Q6_K, 3);

  // Elements 128h + 32k + 16 * half + [0, 16) for k = 0..3: codes[k][cc'] from chunks
  // cc = 4 * half + cc' (ql chunk 16h + cc holds k = 0 and 2, chunk 16h + 8 + cc k = 1 and
  // 3; qh chunk 8h + cc the high bits of all four).
  template <int NC>
  static void quarter(const uint8_t* b, int lane0, int h, int half, const PI* sc, const block_q8_K* const* xb,
                      PI* isum) {
    const PI m4 = pset1_8(0x0F), m30 = pset1_8(0x30);
    PI code[4][4];
    for (int q = 0; q < 4; q++) {
      const int cc = 4 * half + q;
      const uint8_t* pa = b + kQl + (16 * h + cc) * 64 + lane0 * 4;
      const uint8_t* pb = b + kQl + (16 * h + 8 + cc) * 64 + lane0 * 4;
      const uint8_t* ph = b + kQh + (8 * h + cc) * 64 + lane0 * 4;
      ahead(pa);
      ahead(pb);
      ahead(ph);
      const PI A = pload(pa), B = pload(pb), H = pload(ph);
      code[0][q] = pandor(psll16<4>(H), m30, pand(A, m4));
      code[1][q] = pandor(psll16<2>(H), m30, pand(B, m4));
      code[2][q] = pandor(H, m30, pand(psrl16<4>(A), m4));
      code[3][q] = pandor(psrl16<2>(H), m30, pand(psrl16<4>(B), m4));
    }
    for (int k = 0; k < 4; k++) {
      const int grp = 8 * h + 2 * k + half;
      const PI s = psra32<24>(pshuffle(sc[grp / 4], pbcast16(kTop[grp % 4])));
      for (int c = 0; c < NC; c++) {
        int32_t x4[4];
        memcpy(x4, xb[c]->qs + 128 * h + 32 * k + 16 * half, sizeof x4);
        PI dot = pzero();
        for (int q = 0; q < 4; q++) dot = pdot(dot, code[k][q], x4[q]);
        isum[c] = padd(isum[c], pmul(psub(dot, pset1(32 * xb[c]->bsums[grp])), s));
      }
    }
  }

  template <int NC>
  static void tile(const uint8_t* g, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    const int64_t nsb = n / AF_QK_K;
    for (int pass = 0; pass < AF_PACK_ROWS / kPackLanes; pass++) {
      const int lane0 = pass * kPackLanes;
      PF acc[NC];
      for (int c = 0; c < NC; c++) acc[c] = pfzero();
      for (int64_t i = 0; i < nsb; i++) {
        const uint8_t* b = g + i * kBlock;
        const block_q8_K* xb[NC];
        for (int c = 0; c < NC; c++) xb[c] = (const block_q8_K*)xs[c] + i;
        PI sc[4];  // lane bytes: scales 4q .. 4q + 3 of the lane's row
        for (int q = 0; q < 4; q++) sc[q] = pload(b + kScales + q * 64 + lane0 * 4);
        PI isum[NC];
        for (int c = 0; c < NC; c++) isum[c] = pzero();
        for (int h = 0; h < 2; h++)
          for (int half = 0; half < 2; half++) quarter<NC>(b, lane0, h, half, sc, xb, isum);
        const PF dw = phalves(b + lane0 * 2);
        for (int c = 0; c < NC; c++) acc[c] = pfmadd(pfmul(dw, pfset1(xb[c]->d)), pi2f(isum[c]), acc[c]);
      }
      for (int c = 0; c < NC; c++) pfstore(y + c * ldy + lane0, acc[c]);
    }
  }
};

}  // namespace

void fill_simd_packed_k(af_kernel_table* t) {
  t->packed[AF_Q4_K] = packed_groups<PackedQ45K<false>>;
  t->packed[AF_Q5_K] = packed_groups<PackedQ45K<true>>;
  t->packed[AF_Q6_K] = packed_groups<PackedQ6K>;
}

}  // namespace AF_NS

#endif
