// Column gather-axpy (activeflow/col_kernels.h), compiled once per ISA. One driver walks the
// columns in fixed groups and the range in blocks; per type a small codec says where a block's
// scales and codes live, and col_vec.h turns the codes into this ISA's float vectors. The
// arithmetic per element is the same in every ISA (see the header), so paths agree bitwise.
#include <string.h>

#include "activeflow/col_kernels.h"
#include "activeflow/kernels.h"
#include "activeflow/quants.h"
#include "kernels/col_table.h"
#include "kernels/isa/col_vec.h"
#include "kernels/isa/isa.h"

#define AF_COL_TABLE_FN AF_CAT(af_col_table, AF_ISA)

namespace AF_NS {
namespace {

using colv::F;
using colv::kF;
constexpr int G = AF_COL_GROUP;

inline uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

// A codec describes one column format: kStore elements in kStoreBytes of storage, processed
// kBlock elements at a time, in sub-blocks of kSub elements that share a scale d (and an
// offset m when kOffset): x = d * q + m.
struct CQ4_0 {
  static constexpr int kStore = 32, kStoreBytes = 18, kBlock = 32, kSub = 32;
  static constexpr bool kOffset = false;
  static void params(const uint8_t* b, float* d, float*) { d[0] = colv::h2f(rd16(b)); }
  static void codes(const uint8_t* b, int, F* out) { colv::q4_0(b + 2, out); }
};
struct CQ4_1 {
  static constexpr int kStore = 32, kStoreBytes = 20, kBlock = 32, kSub = 32;
  static constexpr bool kOffset = true;
  static void params(const uint8_t* b, float* d, float* m) {
    colv::h2f2(b, d, m);
  }
  static void codes(const uint8_t* b, int, F* out) { colv::q4_1(b + 4, out); }
};
struct CQ8_0 {
  static constexpr int kStore = 32, kStoreBytes = 34, kBlock = 32, kSub = 32;
  static constexpr bool kOffset = false;
  static void params(const uint8_t* b, float* d, float*) { d[0] = colv::h2f(rd16(b)); }
  static void codes(const uint8_t* b, int, F* out) { colv::q8_0((const int8_t*)(b + 2), out); }
};
// Q4_K: d, dmin, scales[12], qs[128]; sub-block j: d * sc_j, offset -dmin * m_j.
struct CQ4_K {
  static constexpr int kStore = 256, kStoreBytes = 144, kBlock = 256, kSub = 32;
  static constexpr bool kOffset = true;
  static void params(const uint8_t* b, float* d, float* m) {
    float dd, dm;
    colv::h2f2(b, &dd, &dm);
    // The 6-bit scales and mins of af_k_scale_min, all eight at once on 32-bit words:
    // bytes 0..3 / 4..7 hold sc / m of sub-blocks 0..3 in their low 6 bits; sub-blocks 4..7
    // take their low 4 bits from the nibbles of bytes 8..11 and the top 2 from bits 6..7.
    uint32_t w[3], sm[4];
    memcpy(w, b + 4, 12);
    sm[0] = w[0] & 0x3f3f3f3f;
    sm[1] = (w[2] & 0x0f0f0f0f) | (((w[0] >> 6) & 0x03030303) << 4);
    sm[2] = w[1] & 0x3f3f3f3f;
    sm[3] = ((w[2] >> 4) & 0x0f0f0f0f) | (((w[1] >> 6) & 0x03030303) << 4);
    colv::kscales(sm, dd, -dm, d, m);
  }
  static void codes(const uint8_t* b, int j, F* out) { colv::q4k(b + 16 + 32 * (j >> 1), j & 1, out); }
};
// Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus bit j of qh[l].
struct CQ5_K {
  static constexpr int kStore = 256, kStoreBytes = 176, kBlock = 256, kSub = 32;
  static constexpr bool kOffset = true;
  static void params(const uint8_t* b, float* d, float* m) { CQ4_K::params(b, d, m); }
  static void codes(const uint8_t* b, int j, F* out) {
    colv::q5k(b + 48 + 32 * (j >> 1), b + 16, j & 1, j, out);
  }
};
// Q6_K: ql[128], qh[64], scales[16] (int8), d. Sub-block t of 16 = half h, quarter k, part lh.
struct CQ6_K {
  static constexpr int kStore = 256, kStoreBytes = 210, kBlock = 256, kSub = 16;
  static constexpr bool kOffset = false;
  static void params(const uint8_t* b, float* d, float*) {
    const float dd = colv::h2f(rd16(b + 208));
    colv::scales16(b + 192, dd, d);
  }
  static void codes(const uint8_t* b, int t, F* out) {
    const int h = t >> 3, k = (t & 7) >> 1, lh = t & 1;
    colv::q6k(b + 64 * h + 32 * (k & 1) + 16 * lh, b + 128 + 32 * h + 16 * lh, 4 * (k >> 1), 2 * k, out);
  }
};
// Float columns: d = 1, the codes are the values; processed 32 at a time, any tail scalar.
struct CF32 {
  static constexpr int kStore = 1, kStoreBytes = 4, kBlock = 32, kSub = 32;
  static constexpr bool kOffset = false;
  static void params(const uint8_t*, float* d, float*) { d[0] = 1.0f; }
  static void codes(const uint8_t* b, int, F* out) { colv::f32((const float*)b, out); }
  static float value(const uint8_t* b, int64_t k) {
    float v;
    memcpy(&v, b + 4 * k, 4);
    return v;
  }
};
struct CF16 {
  static constexpr int kStore = 1, kStoreBytes = 2, kBlock = 32, kSub = 32;
  static constexpr bool kOffset = false;
  static void params(const uint8_t*, float* d, float*) { d[0] = 1.0f; }
  static void codes(const uint8_t* b, int, F* out) { colv::f16((const uint16_t*)b, out); }
  static float value(const uint8_t* b, int64_t k) { return af_fp16_to_fp32(rd16(b + 2 * k)); }
};
struct CBF16 {
  static constexpr int kStore = 1, kStoreBytes = 2, kBlock = 32, kSub = 32;
  static constexpr bool kOffset = false;
  static void params(const uint8_t*, float* d, float*) { d[0] = 1.0f; }
  static void codes(const uint8_t* b, int, F* out) { colv::bf16((const uint16_t*)b, out); }
  static float value(const uint8_t* b, int64_t k) { return af_bf16_to_fp32(rd16(b + 2 * k)); }
};

template <class C>
constexpr int64_t block_bytes() {
  return (int64_t)C::kBlock / C::kStore * C::kStoreBytes;
}
template <class C>
const uint8_t* at(const void* col, int64_t e) {
  return (const uint8_t*)col + e / C::kStore * C::kStoreBytes;
}

// Float-only tail [e, e1) (shorter than a block): the same per-element order, one at a time.
template <class C>
void tail(const void* const* cols, const float* a, int64_t n_cols, float* y, int64_t e,
          int64_t e1) {
  if constexpr (C::kStore == 1) {
    for (; e < e1; e++) {
      float acc = y[e];
      for (int64_t g = 0; g < n_cols; g += G) {
        const int n = (int)(n_cols - g < G ? n_cols - g : G);
        float r = 0.0f;
        for (int i = 0; i < n; i++) r = fmaf(a[g + i], C::value((const uint8_t*)cols[g + i], e), r);
        acc = acc + r;
      }
      y[e] = acc;
    }
  }
}

// One group of N columns over nblk whole blocks: y[b] += r per block, r summed in registers.
// N is a template argument so the column loops unroll and the pointers stay in registers.
template <class C, int N>
void group_pass(const uint8_t* const* cols, const float* ag, float* y, int64_t nblk) {
  constexpr int kSubs = C::kBlock / C::kSub, kV = C::kSub / kF;
  const uint8_t* p[N];
  for (int i = 0; i < N; i++) p[i] = cols[i];
  for (int64_t b = 0; b < nblk; b++, y += C::kBlock) {
    const int64_t off = b * block_bytes<C>();
    float d[N][kSubs], m[N][kSubs];
    for (int i = 0; i < N; i++) C::params(p[i] + off, d[i], m[i]);
    for (int j = 0; j < kSubs; j++) {
      float bias = 0.0f;
      if constexpr (C::kOffset) {
        for (int i = 0; i < N; i++) bias = fmaf(ag[i], m[i][j], bias);
      }
      F r[kV];
      for (int v = 0; v < kV; v++) r[v] = colv::set1(bias);
      for (int i = 0; i < N; i++) {
        F q[kV];
        C::codes(p[i] + off, j, q);
        const F s = colv::set1(ag[i] * d[i][j]);
        for (int v = 0; v < kV; v++) r[v] = colv::madd(s, q[v], r[v]);
      }
      float* yj = y + j * C::kSub;
      for (int v = 0; v < kV; v++) colv::store(yj + v * kF, colv::add(colv::load(yj + v * kF), r[v]));
    }
  }
}

// y[e] += sum_i a[i] * col_i[e] over the whole blocks of [e0, e1), then the float tail. Each
// group of columns streams through its runs of the range while y stays in L1/L2.
template <class C>
void col_axpy(const void* const* cols, const float* a, int64_t n_cols, float* y, int64_t e0,
              int64_t e1) {
  const int64_t nblk = (e1 - e0) / C::kBlock;
  for (int64_t g = 0; g < n_cols; g += G) {
    const int n = (int)(n_cols - g < G ? n_cols - g : G);
    const uint8_t* p[G];
    for (int i = 0; i < n; i++) p[i] = at<C>(cols[g + i], e0);
    static_assert(G == 8, "group_pass is instantiated for 1..8 columns");
    switch (n) {
      case 8: group_pass<C, 8>(p, a + g, y + e0, nblk); break;
      case 7: group_pass<C, 7>(p, a + g, y + e0, nblk); break;
      case 6: group_pass<C, 6>(p, a + g, y + e0, nblk); break;
      case 5: group_pass<C, 5>(p, a + g, y + e0, nblk); break;
      case 4: group_pass<C, 4>(p, a + g, y + e0, nblk); break;
      case 3: group_pass<C, 3>(p, a + g, y + e0, nblk); break;
      case 2: group_pass<C, 2>(p, a + g, y + e0, nblk); break;
      default: group_pass<C, 1>(p, a + g, y + e0, nblk); break;
    }
  }
  tail<C>(cols, a, n_cols, y, e0 + nblk * C::kBlock, e1);
}

// Batched form: per block and group, decode each column's codes once into q, then apply them
// to a tile of activation rows. The per-row scales a * d and offsets are computed for the
// whole tile at once (vectorised over rows: the same products and FMAs, row by row, as
// col_axpy, so every row gets the bits a single call would give it).
template <class C>
void col_axpy_batch(const void* const* cols, const float* a, int64_t n_cols, int64_t nb, float* y,
                    int64_t ldy, int64_t e0, int64_t e1) {
  constexpr int kSubs = C::kBlock / C::kSub, kV = C::kSub / kF;
  constexpr int kRows = 32;  // activation rows per tile
  const int64_t nblk = (e1 - e0) / C::kBlock;
  for (int64_t r0 = 0; r0 < nb; r0 += kRows) {
    const int nr = (int)(nb - r0 < kRows ? nb - r0 : kRows);
    for (int64_t g = 0; g < n_cols; g += G) {
      const int n = (int)(n_cols - g < G ? n_cols - g : G);
      alignas(64) float at_[G][kRows] = {};  // at_[i][r] = a[r0 + r][g + i]
      for (int i = 0; i < n; i++) {
        for (int r = 0; r < nr; r++) at_[i][r] = a[(r0 + r) * n_cols + g + i];
      }
      const uint8_t* p[G];
      for (int i = 0; i < n; i++) p[i] = at<C>(cols[g + i], e0);
      for (int64_t b = 0; b < nblk; b++) {
        const int64_t eb = e0 + b * C::kBlock, off = b * block_bytes<C>();
        float d[G][kSubs], m[G][kSubs];
        for (int i = 0; i < n; i++) C::params(p[i] + off, d[i], m[i]);
        for (int j = 0; j < kSubs; j++) {
          F q[G][kV];
          for (int i = 0; i < n; i++) C::codes(p[i] + off, j, q[i]);
          alignas(64) float bias[kRows] = {};
          alignas(64) float sv[G][kRows];
          if constexpr (C::kOffset) {
            for (int i = 0; i < n; i++) {
              for (int r = 0; r < kRows; r++) bias[r] = fmaf(at_[i][r], m[i][j], bias[r]);
            }
          }
          for (int i = 0; i < n; i++) {
            for (int r = 0; r < kRows; r++) sv[i][r] = at_[i][r] * d[i][j];
          }
          for (int r = 0; r < nr; r++) {
            F acc[kV];
            for (int v = 0; v < kV; v++) acc[v] = colv::set1(bias[r]);
            for (int i = 0; i < n; i++) {
              const F s = colv::set1(sv[i][r]);
              for (int v = 0; v < kV; v++) acc[v] = colv::madd(s, q[i][v], acc[v]);
            }
            float* yj = y + (r0 + r) * ldy + eb + j * C::kSub;
            for (int v = 0; v < kV; v++) colv::store(yj + v * kF, colv::add(colv::load(yj + v * kF), acc[v]));
          }
        }
      }
    }
  }
  for (int64_t bb = 0; bb < nb; bb++) {
    tail<C>(cols, a + bb * n_cols, n_cols, y + bb * ldy, e0 + nblk * C::kBlock, e1);
  }
}

af_col_table build() {
  af_col_table t = {};
#define AF_COL_STR2(x) #x
#define AF_COL_STR(x) AF_COL_STR2(x)
  t.name = AF_COL_STR(AF_ISA);
#define AF_COL(T, C)                   \
  t.axpy[T] = col_axpy<C>;             \
  t.batch[T] = col_axpy_batch<C>;
  AF_COL(AF_F32, CF32)
  AF_COL(AF_F16, CF16)
  AF_COL(AF_BF16, CBF16)
  AF_COL(AF_Q4_0, CQ4_0)
  AF_COL(AF_Q4_1, CQ4_1)
  AF_COL(AF_Q8_0, CQ8_0)
  AF_COL(AF_Q4_K, CQ4_K)
  AF_COL(AF_Q5_K, CQ5_K)
  AF_COL(AF_Q6_K, CQ6_K)
#undef AF_COL
  return t;
}

const af_col_table table = build();

}  // namespace
}  // namespace AF_NS

const af_col_table* AF_COL_TABLE_FN() { return &AF_NS::table; }
