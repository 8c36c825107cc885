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

#if defined(AF_VEC_VNNI)
// AVX-512 matmul tile of the 4-bit formats: one zmm dpbusd covers a weight block against a
// pair of activations (the 32 codes sit in both 256-bit halves), and each lane keeps its own
// float partial sum across blocks, so no per-block horizontal fold is needed; the 8 lanes of
// a half are summed once at the end. The offset term (Q4_0's -8d, Q4_1's m) rides along per
// lane (Q4_1: m * s/8, 8 lanes adding up to m * s). NC = 1 (so matvec) and odd NC use the
// 256-bit K32 tile.
template <class B, bool HAS_M>
struct K32Q4Z {
  // 4 rows x 8 activations (16 zmm accumulators) beat 8 x 4 and the old 256-bit 4 x 4 tile
  // on the 1B Q4_0 prefill.
  static constexpr int kMatmulRows = 4, kMatmulCols = 8;
  template <int NR, int NC>
  static void tile(const char* w, size_t rs, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    if constexpr (NC % 2 != 0) {
      K32<Q4Policy<B, HAS_M>>::template tile<NR, NC>(w, rs, xs, n, y, ldy);
    } else {
      constexpr int NP = NC / 2;
      __m512 acc[NR][NP];
      for (int r = 0; r < NR; r++)
        for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_ps();
      const __m512i lo4 = _mm512_set1_epi8(0x0F);
      // Spread [d_a, s_a, d_b, s_b] over the halves: d (or s) of activation a in lanes 0..7,
      // of activation b in lanes 8..15.
      const __m512i idx_d = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
      const __m512i idx_s = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
      const int64_t nblk = n / AF_QK;
      for (int64_t i = 0; i < nblk; i++) {
        __m512i xq[NP];
        __m512 dx[NP], sx[NP];
        for (int p = 0; p < NP; p++) {
          const block_q8_1* a = (const block_q8_1*)xs[2 * p] + i;
          const block_q8_1* b = (const block_q8_1*)xs[2 * p + 1] + i;
          const __m256i qa = _mm256_loadu_si256((const __m256i*)a->qs);
          xq[p] = _mm512_inserti64x4(_mm512_castsi256_si512(qa), _mm256_loadu_si256((const __m256i*)b->qs), 1);
          // d and s are adjacent floats in block_q8_1: [d_a, s_a, d_b, s_b] from two 8-byte loads.
          const __m128 da = _mm_castpd_ps(_mm_load_sd((const double*)&a->d));
          const __m128 ds = _mm_loadh_pi(da, (const __m64*)&b->d);
          dx[p] = _mm512_permutexvar_ps(idx_d, _mm512_castps128_ps512(ds));
          sx[p] = _mm512_permutexvar_ps(idx_s, _mm512_castps128_ps512(ds));
          if constexpr (HAS_M) sx[p] = _mm512_mul_ps(sx[p], _mm512_set1_ps(0.125f));
        }
        for (int r = 0; r < NR; r++) {
          const B* wb = (const B*)(w + r * rs) + i;
          if ((i & 1) == 0) prefetch((const char*)wb + kPrefetchBytes);
          // [low nibbles | high nibbles] of the block in both 256-bit halves.
          const __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)wb->qs));
          const __m512i wq = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4), lo4);
          if constexpr (HAS_M) {
            float d, m;
            h2f_pair(&wb->d, &d, &m);
            const __m512 dw = _mm512_set1_ps(d), mw = _mm512_set1_ps(m);
            for (int p = 0; p < NP; p++) {
              const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq[p]);
              const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), dx[p]);
              acc[r][p] = _mm512_fmadd_ps(mw, sx[p], _mm512_fmadd_ps(dw, t, acc[r][p]));
            }
          } else {
            const __m512 dw = _mm512_set1_ps(h2f(wb->d));
            for (int p = 0; p < NP; p++) {
              // Per lane d_x * dot_lane - s_x; over 8 lanes d_x * (dot - 8 * sum(x)), which
              // undoes the +8 bias of Q4_0's codes.
              const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq[p]);
              const __m512 t = _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), dx[p], sx[p]);
              acc[r][p] = _mm512_fmadd_ps(dw, t, acc[r][p]);
            }
          }
        }
      }
      for (int r = 0; r < NR; r++)
        for (int p = 0; p < NP; p++) {
          y[2 * p * ldy + r] = f8hsum(_mm512_castps512_ps256(acc[r][p]));
          y[(2 * p + 1) * ldy + r] = f8hsum(_mm512_extractf32x8_ps(acc[r][p], 1));
        }
    }
  }
};
#endif

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
#if defined(AF_VEC_VNNI)
  t->matmul[AF_Q4_0] = matmul_tiles<K32Q4Z<block_q4_0, false>>;
#else
  t->matmul[AF_Q4_0] = matmul_tiles<K32<Q4Policy<block_q4_0, false>>>;
#endif
  t->matvec[AF_Q4_1] = matvec_tiles<K32<Q4Policy<block_q4_1, true>>>;
#if defined(AF_VEC_VNNI)
  t->matmul[AF_Q4_1] = matmul_tiles<K32Q4Z<block_q4_1, true>>;
#else
  t->matmul[AF_Q4_1] = matmul_tiles<K32<Q4Policy<block_q4_1, true>>>;
#endif
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
