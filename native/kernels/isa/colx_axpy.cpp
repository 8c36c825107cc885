// Split-column gather-axpy (activeflow/colx_kernels.h), compiled once per ISA. The channels
// are walked in passes of kStreams channels; per pass, each 32-row tile of y is held in
// registers while every channel of the pass adds a * code into its block-column's sum s, and
// each block-column whose run ends in the pass applies its scale row once: y = fma(d, s, y).
// A run cut by the end of a pass keeps its s in a scratch for the next pass. Every element
// sees the header's order of operations, so the paths agree bitwise; passes, chunks and
// tiles change only speed.
#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "kernels/colx_table.h"
#include "kernels/isa/col_vec.h"
#include "kernels/isa/isa.h"

#define AF_COLX_TABLE_FN AF_CAT(af_colx_table, AF_ISA)

namespace AF_NS {
namespace {

using colv::F;
using colv::kF;
constexpr int kRows = AF_COLX_ROWS;
constexpr int kV = kRows / kF;  // vectors per tile
// Rows per chunk of the single-row kernel: its scratch of partial sums (on the stack) holds
// one chunk. Larger matrices stream each channel in one piece: cutting the rows into shorter
// chunks restarted every code stream and was slower (bench/colx.ts).
constexpr int64_t kChunk = 16384;
// Software prefetch distance, in bytes ahead of the tile, for each channel's codes (once per
// 64 bytes) and each scale-plane row: a pass reads more streams than the hardware
// prefetchers follow, and without it the split kernel ran 2-3x slower from DRAM.
constexpr int64_t kAhead = 512;
// The batch kernel's pass: whole runs until at least this many channels.
constexpr int kPass = 16;
// A pass holds whole runs (a run is at most 32 distinct channels), so at most this many.
constexpr int kPassMax = kPass - 1 + 32;

// A code format: where row e of a channel's codes starts, and the 32 codes from there as
// float vectors in row order. kPlanes: halves per (block-column, row) in the scale plane;
// kTileBytes: code bytes of one channel per tile. kStreams: channels per pass of the
// single-row kernel (each a stream of code bytes from DRAM; fastest measured, bench/colx.ts).
struct XQ4_0 {
  static constexpr int kPlanes = 1, kTileBytes = 16, kStreams = 24;
  static const uint8_t* at(const void* codes, int64_t e) { return (const uint8_t*)codes + e / 2; }
  static void codes(const uint8_t* p, F* out) { colv::q4_0(p, out); }
};
// Q4_1 codes are centred like Q4_0's (nibble - 8) and the offset moved to m + 8d: the sums
// of d * q and m * A then cancel far less (m is about -7.5 d on typical blocks).
struct XQ4_1 {
  static constexpr int kPlanes = 2, kTileBytes = 16, kStreams = 24;
  static const uint8_t* at(const void* codes, int64_t e) { return (const uint8_t*)codes + e / 2; }
  static void codes(const uint8_t* p, F* out) { colv::q4_0(p, out); }
};
struct XQ8_0 {
  static constexpr int kPlanes = 1, kTileBytes = 32, kStreams = 8;
  static const uint8_t* at(const void* codes, int64_t e) { return (const uint8_t*)codes + e; }
  static void codes(const uint8_t* p, F* out) { colv::q8_0((const int8_t*)p, out); }
};

// The runs of one batch pass: run r covers channels [start[r], start[r + 1]) of block-column b[r].
struct Pass {
  int64_t start[kPassMax + 1];
  int32_t b[kPassMax];
  int runs;
};

// Fills p with the runs from channel i0 until the pass holds kPass channels (or the list
// ends); returns the end of the pass.
int64_t next_pass(const int32_t* ch, int64_t i0, int64_t n, Pass& p) {
  int64_t i = i0;
  p.runs = 0;
  while (i < n && i - i0 < kPass) {
    const int32_t b = ch[i] / 32;
    p.start[p.runs] = i;
    p.b[p.runs++] = b;
    while (i < n && ch[i] / 32 == b) i++;
  }
  p.start[p.runs] = i;
  return i;
}

// Sum of a over one run, in order (the offset term of Q4_1).
inline float run_sum(const float* a, int64_t i0, int64_t i1) {
  float s = 0.0f;
  for (int64_t i = i0; i < i1; i++) s = s + a[i];
  return s;
}

// The segments of one single-row pass: at most kStreams consecutive channels, cut where the
// block-column changes. The first segment may continue a run of the previous pass (its s
// then comes from the scratch) and the last may end before its run does (s goes back to it).
template <int kStreams>
struct Segments {
  int64_t start[kStreams + 1];
  int32_t b[kStreams];
  float sum[kStreams];  // Q4_1: the run's sum of a up to the segment's end
  int n;
  bool carry_in, carry_out;
};

// Prefetches the first kAhead bytes (or all, if shorter) of rows [c0, c1) of channels
// [i0, i1) and of their scale-plane rows: the next pass's stream heads, which the in-stream
// prefetch never covers (on SmolLM2 a part is 96-768 bytes, so most of it is head).
template <class C>
inline void prefetch_heads(const void* const* codes, const int32_t* ch, int64_t i0, int64_t i1, const uint16_t* plane,
                           int64_t n_out, int64_t c0, int64_t c1) {
  const int64_t code_bytes = (c1 - c0) / kRows * C::kTileBytes;
  const int64_t head = code_bytes < kAhead ? code_bytes : kAhead;
  int32_t last_b = -1;
  for (int64_t i = i0; i < i1; i++) {
    const uint8_t* p = C::at(codes[i], c0);
    for (int64_t o = 0; o < head; o += 64) __builtin_prefetch(p + o);
    const int32_t b = ch[i] / 32;
    if (b == last_b) continue;
    last_b = b;
    const uint8_t* pb = (const uint8_t*)(plane + (int64_t)b * C::kPlanes * n_out + c0);
    for (int k = 0; k < C::kPlanes; k++) {
      for (int64_t o = 0; o < 2 * (c1 - c0) && o < kAhead; o += 64) __builtin_prefetch(pb + k * 2 * n_out + o);
    }
  }
}

template <class C>
void colx_axpy(const void* const* codes, const int32_t* ch, const float* a, int64_t n, const void* scales,
               int64_t n_out, float* y, int64_t e0, int64_t e1) {
  const uint16_t* plane = (const uint16_t*)scales;
  alignas(64) float sbuf[kChunk];  // s of a run that spans passes, per row of the chunk
  Segments<C::kStreams> g;
  for (int64_t c0 = e0; c0 < e1; c0 += kChunk) {
    const int64_t c1 = c0 + kChunk < e1 ? c0 + kChunk : e1;
    float run_a = 0.0f;
    g.carry_out = false;
    for (int64_t i0 = 0; i0 < n;) {
      const int64_t i1 = i0 + C::kStreams < n ? i0 + C::kStreams : n;
      g.carry_in = g.carry_out;
      g.n = 0;
      for (int64_t i = i0; i < i1;) {
        const int32_t b = ch[i] / 32;
        if (i > i0 || !g.carry_in) run_a = 0.0f;
        g.start[g.n] = i;
        g.b[g.n] = b;
        for (; i < i1 && ch[i] / 32 == b; i++) {
          if constexpr (C::kPlanes == 2) run_a = run_a + a[i];
        }
        g.sum[g.n++] = run_a;
      }
      g.start[g.n] = i1;
      g.carry_out = i1 < n && ch[i1] / 32 == ch[i1 - 1] / 32;
      {
        // Two passes ahead (one pass of short columns is over before its prefetches land);
        // the first pass also fetches the next one.
        const int64_t a0 = i0 == 0 ? i1 : i1 + C::kStreams;
        const int64_t a1 = i1 + 2 * C::kStreams;
        if (a0 < n) prefetch_heads<C>(codes, ch, a0, a1 < n ? a1 : n, plane, n_out, c0, c1);
      }
      const int ends = g.carry_out ? g.n - 1 : g.n;  // segments whose run ends in this pass
      for (int64_t e = c0; e < c1; e += kRows) {
        F s[kV], yv[kV];
        for (int v = 0; v < kV; v++) s[v] = g.carry_in ? colv::load(sbuf + (e - c0) + v * kF) : colv::zero();
        if (ends > 0) {
          for (int v = 0; v < kV; v++) yv[v] = colv::load(y + e + v * kF);
        }
        for (int k = 0; k < g.n; k++) {
          if (k > 0) {
            for (int v = 0; v < kV; v++) s[v] = colv::zero();
          }
          for (int64_t i = g.start[k]; i < g.start[k + 1]; i++) {
            F q[kV];
            const uint8_t* at = C::at(codes[i], e);
            if ((((e - c0) / kRows * C::kTileBytes) & 63) == 0) __builtin_prefetch(at + kAhead);
            C::codes(at, q);
            const F av = colv::set1(a[i]);
            for (int v = 0; v < kV; v++) s[v] = colv::madd(av, q[v], s[v]);
          }
          if (k >= ends) break;
          const uint16_t* pb = plane + (int64_t)g.b[k] * C::kPlanes * n_out + e;
          __builtin_prefetch((const char*)pb + kAhead);
          F d[kV];
          colv::f16(pb, d);
          for (int v = 0; v < kV; v++) yv[v] = colv::madd(d[v], s[v], yv[v]);
          if constexpr (C::kPlanes == 2) {
            F m[kV];
            colv::f16(pb + n_out, m);
            const F av = colv::set1(g.sum[k]), eight = colv::set1(8.0f);
            for (int v = 0; v < kV; v++) yv[v] = colv::madd(colv::madd(eight, d[v], m[v]), av, yv[v]);
          }
        }
        if (g.carry_out) {
          for (int v = 0; v < kV; v++) colv::store(sbuf + (e - c0) + v * kF, s[v]);
        }
        if (ends > 0) {
          for (int v = 0; v < kV; v++) colv::store(y + e + v * kF, yv[v]);
        }
      }
      i0 = i1;
    }
  }
}

// Batched form: per pass and tile, each channel's codes and each run's scales are decoded
// once into q / d / m, then every activation row runs the single-row arithmetic on them.
template <class C>
void colx_axpy_batch(const void* const* codes, const int32_t* ch, const float* a, int64_t n, int64_t nb,
                     const void* scales, int64_t n_out, float* y, int64_t ldy, int64_t e0, int64_t e1) {
  const uint16_t* plane = (const uint16_t*)scales;
  Pass p;
  alignas(64) float q[kPassMax][kRows];
  alignas(64) float d[kPassMax][kRows];
  alignas(64) float m[C::kPlanes == 2 ? kPassMax : 1][kRows];
  for (int64_t i0 = 0; i0 < n;) {
    const int64_t i1 = next_pass(ch, i0, n, p);
    prefetch_heads<C>(codes, ch, i1, i1 + kPass < n ? i1 + kPass : n, plane, n_out, e0, e1);
    for (int64_t e = e0; e < e1; e += kRows) {
      for (int64_t i = i0; i < i1; i++) {
        F t[kV];
        const uint8_t* at = C::at(codes[i], e);
        if ((((e - e0) / kRows * C::kTileBytes) & 63) == 0) __builtin_prefetch(at + kAhead);
        C::codes(at, t);
        for (int v = 0; v < kV; v++) colv::store(q[i - i0] + v * kF, t[v]);
      }
      for (int r = 0; r < p.runs; r++) {
        const uint16_t* pb = plane + (int64_t)p.b[r] * C::kPlanes * n_out + e;
        __builtin_prefetch((const char*)pb + kAhead);
        F t[kV];
        colv::f16(pb, t);
        for (int v = 0; v < kV; v++) colv::store(d[r] + v * kF, t[v]);
        if constexpr (C::kPlanes == 2) {
          F mv[kV];
          colv::f16(pb + n_out, mv);
          for (int v = 0; v < kV; v++) colv::store(m[r] + v * kF, colv::madd(colv::set1(8.0f), t[v], mv[v]));
        }
      }
      for (int64_t bb = 0; bb < nb; bb++) {
        const float* ab = a + bb * n;
        float* yb = y + bb * ldy + e;
        F yv[kV];
        for (int v = 0; v < kV; v++) yv[v] = colv::load(yb + v * kF);
        for (int r = 0; r < p.runs; r++) {
          F s[kV];
          for (int v = 0; v < kV; v++) s[v] = colv::zero();
          for (int64_t i = p.start[r]; i < p.start[r + 1]; i++) {
            const F av = colv::set1(ab[i]);
            for (int v = 0; v < kV; v++) s[v] = colv::madd(av, colv::load(q[i - i0] + v * kF), s[v]);
          }
          for (int v = 0; v < kV; v++) yv[v] = colv::madd(colv::load(d[r] + v * kF), s[v], yv[v]);
          if constexpr (C::kPlanes == 2) {
            const F av = colv::set1(run_sum(ab, p.start[r], p.start[r + 1]));
            for (int v = 0; v < kV; v++) yv[v] = colv::madd(colv::load(m[r] + v * kF), av, yv[v]);
          }
        }
        for (int v = 0; v < kV; v++) colv::store(yb + v * kF, yv[v]);
      }
    }
    i0 = i1;
  }
}

af_colx_table build() {
  af_colx_table t = {};
#define AF_COLX_STR2(x) #x
#define AF_COLX_STR(x) AF_COLX_STR2(x)
  t.name = AF_COLX_STR(AF_ISA);
#define AF_COLX(T, C)            \
  t.axpy[T] = colx_axpy<C>;      \
  t.batch[T] = colx_axpy_batch<C>;
  AF_COLX(AF_Q4_0, XQ4_0)
  AF_COLX(AF_Q4_1, XQ4_1)
  AF_COLX(AF_Q8_0, XQ8_0)
#undef AF_COLX
  return t;
}

const af_colx_table table = build();

}  // namespace
}  // namespace AF_NS

const af_colx_table* AF_COLX_TABLE_FN() { return &AF_NS::table; }
