// SIMD dot kernels of the quantised weight types, written against activeflow/vec.h. Each
// kernel is a tile of NR weight rows x NC activations: matvec uses NC = 1 with several rows
// sharing one activation load, matmul NC > 1 so every unpacked weight block feeds NC dots.
#include "kernels/isa/isa.h"
#if !defined(AF_ISA_SCALAR)

#include "activeflow/kernels.h"
#include "activeflow/quants.h"
#include "activeflow/vec.h"
#include "kernels/isa/simd_tiles.h"

namespace AF_NS {
namespace {

using namespace vec;

// The activation side of one 32-element block for NC activations: codes, scales d, and
// the sums s = d * sum(q), both with lane c (mod NC) holding activation c, so one FMA per
// weight row covers all NC activations.
template <int NC>
struct ActBlocks {
  I q[NC];
  F8 d;  // lanes c and c + 4 hold d of activation c (NC <= 4)
  F8 s;
  ActBlocks(const char* const* xs, int64_t i) {
    alignas(32) float da[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sa[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int c = 0; c < NC; c++) {
      const block_q8_1* xb = (const block_q8_1*)xs[c] + i;
      q[c] = iload(xb->qs);
      da[c] = da[c + 4] = xb->d;
      sa[c] = xb->s;
    }
    d = NC == 1 ? f8set1(da[0]) : f8load(da);
    s = NC == 1 ? f8set1(sa[0]) : f8load(sa);
  }
};

// Weight side policies of the 32-element formats: prepare a block's codes once, dot them
// with an activation block, and give the scale d and the offset factor m (the term
// m * s_x is added per block: Q4_1's min, Q4_0's -8d, Q8_0's VNNI offset).
template <class B, bool HAS_M>
struct Q4Policy {
  typedef B Block;
  typedef I W;
  static W prep(const B* wb) { return unpack_nibbles16(wb->qs); }
  static I dot(const W& w, I x) { return dot_u8s8(izero(), w, x); }
  static constexpr bool kHasOffset = true;
  static void scales(const B* wb, float* d, float* m) {
    if constexpr (HAS_M) {
      h2f_pair(&wb->d, d, m);
    } else {
      *d = h2f(wb->d);
      *m = -8.0f * *d;
    }
  }
};

struct Q8Policy {
  typedef block_q8_0 Block;
  typedef S8W W;
  static W prep(const block_q8_0* wb) { return prep_s8(iload(wb->qs)); }
  static I dot(const W& w, I x) { return dot_s8s8(izero(), w, x); }
  static constexpr bool kHasOffset = kS8Offset != 0;
  static void scales(const block_q8_0* wb, float* d, float* m) {
    *d = h2f(wb->d);
    *m = -(float)kS8Offset * *d;
  }
};

// NR x NC tile of a 32-element format against Q8_1 activations. With NC = 4 the four
// integer dots of a row are first folded into one vector (lanes c and c + 4 hold halves of
// dot c), so the int->float conversion and scaling run once per row instead of per dot.
template <class P>
struct K32 {
  typedef typename P::Block B;
  template <int NR, int NC>
  static void tile(const char* w, size_t rs, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    constexpr bool kFold = NC == 4;
    constexpr int NA = kFold ? 1 : NC;  // accumulators per row
    F8 acc[NR][NA], corr[NR];
    for (int r = 0; r < NR; r++) {
      corr[r] = f8zero();
      for (int a = 0; a < NA; a++) acc[r][a] = f8zero();
    }
    const int64_t nblk = n / AF_QK;
    for (int64_t i = 0; i < nblk; i++) {
      const ActBlocks<NC> x(xs, i);
      for (int r = 0; r < NR; r++) {
        const B* wb = (const B*)(w + r * rs) + i;
        prefetch((const char*)wb + kPrefetchBytes);
        const typename P::W wq = P::prep(wb);
        float d, m;
        P::scales(wb, &d, &m);
        if constexpr (P::kHasOffset) corr[r] = f8madd(f8set1(m), x.s, corr[r]);
        const F8 scale = f8mul(f8set1(d), x.d);
        if constexpr (kFold) {
          const I p = fold4(P::dot(wq, x.q[0]), P::dot(wq, x.q[1]), P::dot(wq, x.q[2]), P::dot(wq, x.q[3]));
          acc[r][0] = f8madd(i2f(p), scale, acc[r][0]);
        } else {
          for (int c = 0; c < NC; c++) acc[r][c] = f8madd(i2f(P::dot(wq, x.q[c])), scale, acc[r][c]);
        }
      }
    }
    for (int r = 0; r < NR; r++) {
      alignas(32) float cr[8], a[8];
      f8store(cr, corr[r]);
      if constexpr (kFold) {
        f8store(a, acc[r][0]);
        for (int c = 0; c < 4; c++) y[c * ldy + r] = a[c] + a[c + 4] + cr[c];
      } else {
        for (int c = 0; c < NC; c++) y[c * ldy + r] = f8hsum(acc[r][c]) + cr[c];
      }
    }
  }
};

// Q4_K / Q5_K against Q8_K: per super-block the integer sum of sc_j * dot_j, then
// d*dx*that - dmin*dx*sum(m_j * bsum_j).
template <bool FIVE>
struct KQ45K {
  typedef typename std::conditional<FIVE, block_q5_K, block_q4_K>::type B;
  template <int NR, int NC>
  static void tile(const char* w, size_t rs, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    F8 acc[NR][NC];
    float corr[NR][NC];
    for (int r = 0; r < NR; r++)
      for (int c = 0; c < NC; c++) acc[r][c] = f8zero(), corr[r][c] = 0;
    const int64_t nblk = n / AF_QK_K;
    for (int64_t i = 0; i < nblk; i++) {
      const block_q8_K* xb[NC];
      for (int c = 0; c < NC; c++) xb[c] = (const block_q8_K*)xs[c] + i;
      for (int r = 0; r < NR; r++) {
        const B* wb = (const B*)(w + r * rs) + i;
        prefetch_block(wb, sizeof(B));
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) af_k_scale_min(j, wb->scales, &sc[j], &mn[j]);
        I isum[NC];
        for (int c = 0; c < NC; c++) isum[c] = izero();
        I qh = izero();
        if constexpr (FIVE) qh = iload(wb->qh);
        for (int g = 0; g < 4; g++) {
          const I q = iload(wb->qs + 32 * g);
          I lo = lo_nibbles(q), hi = hi_nibbles(q);
          if constexpr (FIVE) {
            lo = ior(lo, high_bits(qh, 2 * g, 1));
            hi = ior(hi, high_bits(qh, 2 * g + 1, 1));
          }
          for (int c = 0; c < NC; c++) {
            isum[c] = dot_u8s8_scaled(isum[c], lo, iload(xb[c]->qs + 64 * g), sc[2 * g], sc[2 * g]);
            isum[c] = dot_u8s8_scaled(isum[c], hi, iload(xb[c]->qs + 64 * g + 32), sc[2 * g + 1], sc[2 * g + 1]);
          }
        }
        const float d = h2f(wb->d), dmin = h2f(wb->dmin);
        for (int c = 0; c < NC; c++) {
          int summ = 0;
          for (int j = 0; j < 8; j++) summ += mn[j] * (xb[c]->bsums[2 * j] + xb[c]->bsums[2 * j + 1]);
          acc[r][c] = f8madd(i2f(isum[c]), f8set1(d * xb[c]->d), acc[r][c]);
          corr[r][c] -= dmin * xb[c]->d * (float)summ;
        }
      }
    }
    for (int r = 0; r < NR; r++)
      for (int c = 0; c < NC; c++) y[c * ldy + r] = f8hsum(acc[r][c]) + corr[r][c];
  }
};

// Q6_K against Q8_K: unsigned 6-bit codes, the -32 offset undone with bsums per 16-group.
struct KQ6K {
  template <int NR, int NC>
  static void tile(const char* w, size_t rs, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    F8 acc[NR][NC];
    float corr[NR][NC];
    for (int r = 0; r < NR; r++)
      for (int c = 0; c < NC; c++) acc[r][c] = f8zero(), corr[r][c] = 0;
    const int64_t nblk = n / AF_QK_K;
    for (int64_t i = 0; i < nblk; i++) {
      const block_q8_K* xb[NC];
      for (int c = 0; c < NC; c++) xb[c] = (const block_q8_K*)xs[c] + i;
      for (int r = 0; r < NR; r++) {
        const block_q6_K* wb = (const block_q6_K*)(w + r * rs) + i;
        prefetch_block(wb, sizeof(block_q6_K));
        I isum[NC];
        for (int c = 0; c < NC; c++) isum[c] = izero();
        for (int h = 0; h < 2; h++) {
          const I ql0 = iload(wb->ql + 64 * h), ql1 = iload(wb->ql + 64 * h + 32);
          const I qh = iload(wb->qh + 32 * h);
          for (int k = 0; k < 4; k++) {
            const I src = (k & 1) ? ql1 : ql0;
            const I q = ior((k & 2) ? hi_nibbles(src) : lo_nibbles(src), high_bits(qh, 2 * k, 3));
            const int s0 = wb->scales[8 * h + 2 * k], s1 = wb->scales[8 * h + 2 * k + 1];
            for (int c = 0; c < NC; c++) {
              isum[c] = dot_u8s8_scaled(isum[c], q, iload(xb[c]->qs + 128 * h + 32 * k), s0, s1);
            }
          }
        }
        const float d = h2f(wb->d);
        for (int c = 0; c < NC; c++) {
          int off = 0;
          for (int g = 0; g < 16; g++) off += wb->scales[g] * xb[c]->bsums[g];
          acc[r][c] = f8madd(i2f(isum[c]), f8set1(d * xb[c]->d), acc[r][c]);
          corr[r][c] -= 32.0f * d * xb[c]->d * (float)off;
        }
      }
    }
    for (int r = 0; r < NR; r++)
      for (int c = 0; c < NC; c++) y[c * ldy + r] = f8hsum(acc[r][c]) + corr[r][c];
  }
};

}  // namespace

void fill_simd_quant(af_kernel_table* t) {
  t->matvec[AF_Q4_0] = matvec_tiles<K32<Q4Policy<block_q4_0, false>>>;
  t->matmul[AF_Q4_0] = matmul_tiles<K32<Q4Policy<block_q4_0, false>>>;
  t->matvec[AF_Q4_1] = matvec_tiles<K32<Q4Policy<block_q4_1, true>>>;
  t->matmul[AF_Q4_1] = matmul_tiles<K32<Q4Policy<block_q4_1, true>>>;
  t->matvec[AF_Q8_0] = matvec_tiles<K32<Q8Policy>>;
  t->matmul[AF_Q8_0] = matmul_tiles<K32<Q8Policy>>;
  t->matvec[AF_Q4_K] = matvec_tiles<KQ45K<false>>;
  t->matmul[AF_Q4_K] = matmul_tiles<KQ45K<false>>;
  t->matvec[AF_Q5_K] = matvec_tiles<KQ45K<true>>;
  t->matmul[AF_Q5_K] = matmul_tiles<KQ45K<true>>;
  t->matvec[AF_Q6_K] = matvec_tiles<KQ6K>;
  t->matmul[AF_Q6_K] = matmul_tiles<KQ6K>;
}

}  // namespace AF_NS

#endif
