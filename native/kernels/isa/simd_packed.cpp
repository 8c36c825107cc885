// Packed-row tiles of the 32-element formats (Q4_0, Q4_1, Q8_0) against Q8_1 activations.
// A packed block of 16 rows holds the rows' scales as one vector of halves and the codes as
// chunk vectors of 4 bytes per row; every dot instruction then serves all rows of a vector
// (pdot: one dpbusd per 4 codes x 16 rows on AVX-512), each row's block sum lands in its own
// lane, and the block scale is applied with one FMA per vector, no horizontal sums.
#include "kernels/isa/isa.h"
#if !defined(AF_ISA_SCALAR)

#include <string.h>

#include <type_traits>

#include "activeflow/kernels.h"
#include "activeflow/quants.h"
#include "activeflow/vec.h"
#include "kernels/isa/packed_tiles.h"
#include "kernels/pack_layout.h"

namespace AF_NS {
namespace {

using namespace vec;

template <int TYPE>
struct Packed32 {
  static constexpr int kCols = kPackCols32;
  static constexpr bool kQ8 = TYPE == AF_Q8_0;
  static constexpr bool kHasM = TYPE == AF_Q4_1;
  static constexpr int kBlock = af_packed_block_bytes(TYPE);
  static constexpr int kQs = af_packed_offset(TYPE, kHasM ? 2 : 1);
  static constexpr int kM = af_packed_offset(TYPE, 1);
  // Per-block offset term, as a multiple of s = d_x * sum(q_x): Q4_0's codes carry +8,
  // Q8_0's the VNNI offset; Q4_1 adds m * s instead.
  static constexpr float kOffset = TYPE == AF_Q4_0 ? 8.0f : kQ8 ? (float)kS8Offset : 0.0f;
  // The code vectors of one chunk: 4 codes of each row. Q4: chunk k's low nibbles are
  // elements 4k..4k+3, its high nibbles 16+4k..; Q8_0: chunk k is elements 4k..4k+3. Either
  // way code vector k pairs with activation word k.
  typedef typename std::conditional<kQ8, PS8, PI>::type W;

  template <int NC>
  static void tile(const uint8_t* g, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    const int64_t nblk = n / AF_QK;
    const PI lo4 = pset1_8(0x0F);
    for (int pass = 0; pass < AF_PACK_ROWS / kPackLanes; pass++) {
      const int lane0 = pass * kPackLanes;
      PF acc[NC];
      for (int c = 0; c < NC; c++) acc[c] = pfzero();
      for (int64_t i = 0; i < nblk; i++) {
        const uint8_t* b = g + i * kBlock;
        for (int o = 0; o < kBlock; o += 64) prefetch(b + kPackPrefetchBytes + o);
        W wv[8];
        for (int k = 0; k < (kQ8 ? 8 : 4); k++) {
          const PI v = pload(b + kQs + k * 64 + lane0 * 4);
          if constexpr (kQ8) {
            wv[k] = pprep_s8(v);
          } else {
            wv[k] = pand(v, lo4);
            wv[k + 4] = pand(psrl16<4>(v), lo4);
          }
        }
        const PF dw = phalves(b + lane0 * 2);
        PF mw = pfzero();
        if constexpr (kHasM) mw = phalves(b + kM + lane0 * 2);
        for (int c = 0; c < NC; c++) {
          const block_q8_1* xb = (const block_q8_1*)xs[c] + i;
          int32_t x4[8];
          memcpy(x4, xb->qs, sizeof x4);
          PI d0 = pzero(), d1 = pzero();
          for (int k = 0; k < 4; k++) {
            if constexpr (kQ8) {
              d0 = pdot_s8(d0, wv[k], x4[k]);
              d1 = pdot_s8(d1, wv[k + 4], x4[k + 4]);
            } else {
              d0 = pdot(d0, wv[k], x4[k]);
              d1 = pdot(d1, wv[k + 4], x4[k + 4]);
            }
          }
          const PF dot = pi2f(padd(d0, d1));
          if constexpr (kHasM) {
            acc[c] = pfmadd(dw, pfmul(dot, pfset1(xb->d)), acc[c]);
            acc[c] = pfmadd(mw, pfset1(xb->s), acc[c]);
          } else if constexpr (kOffset != 0.0f) {
            acc[c] = pfmadd(dw, pfmsub(dot, pfset1(xb->d), pfset1(kOffset * xb->s)), acc[c]);
          } else {
            acc[c] = pfmadd(dw, pfmul(dot, pfset1(xb->d)), acc[c]);
          }
        }
      }
      for (int c = 0; c < NC; c++) pfstore(y + c * ldy + lane0, acc[c]);
    }
  }
};

}  // namespace

void fill_simd_packed_k(af_kernel_table* t);

void fill_simd_packed(af_kernel_table* t) {
  t->packed[AF_Q4_0] = packed_groups<Packed32<AF_Q4_0>>;
  t->packed[AF_Q4_1] = packed_groups<Packed32<AF_Q4_1>>;
  t->packed[AF_Q8_0] = packed_groups<Packed32<AF_Q8_0>>;
  fill_simd_packed_k(t);
}

}  // namespace AF_NS

#endif
