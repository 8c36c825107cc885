// SIMD kernels of the float weight types (F32, F16, BF16 rows against an F32 activation;
// weights converted on the fly) and of the float primitives; each ends with a scalar tail.
#include "kernels/isa/isa.h"
#if !defined(AF_ISA_SCALAR)

#include <math.h>
#include <string.h>

#include "activeflow/kernels.h"
#include "activeflow/quants.h"
#include "activeflow/vec.h"
#include "kernels/isa/packed_tiles.h"
#include "kernels/isa/simd_tiles.h"

namespace AF_NS {
namespace {

using namespace vec;


template <int TYPE>
struct KFloat {
  typedef typename std::conditional<TYPE == AF_F32, float, uint16_t>::type T;
  static F load(const T* p) {
    if constexpr (TYPE == AF_F32) return fload(p); else return fload(p, TYPE == AF_BF16);
  }
  static float one(const T* p) {
    if constexpr (TYPE == AF_F32) return *p;
    else if constexpr (TYPE == AF_BF16) return af_bf16_to_fp32(*p);
    else return h2f(*p);
  }
  template <int NR, int NC>
  static void tile(const char* w, size_t rs, const char* const* xs, int64_t n, float* y, int64_t ldy) {
    F acc[NR][NC];
    for (int r = 0; r < NR; r++)
      for (int c = 0; c < NC; c++) acc[r][c] = fzero();
    int64_t i = 0;
    for (; i + kF <= n; i += kF) {
      F xv[NC];
      for (int c = 0; c < NC; c++) xv[c] = fload((const float*)xs[c] + i);
      for (int r = 0; r < NR; r++) {
        prefetch((const T*)(w + r * rs) + i + kPrefetchBytes / sizeof(T));
        const F wv = load((const T*)(w + r * rs) + i);
        for (int c = 0; c < NC; c++) acc[r][c] = fmadd(wv, xv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < NR; r++) {
      for (int c = 0; c < NC; c++) {
        float s = fhsum(acc[r][c]);
        for (int64_t k = i; k < n; k++) s += one((const T*)(w + r * rs) + k) * ((const float*)xs[c])[k];
        y[c * ldy + r] = s;
      }
    }
  }
};

float dot_f32(const float* a, const float* b, int64_t n) {
  F acc0 = fzero(), acc1 = fzero();
  int64_t i = 0;
  for (; i + 2 * kF <= n; i += 2 * kF) {
    acc0 = fmadd(fload(a + i), fload(b + i), acc0);
    acc1 = fmadd(fload(a + i + kF), fload(b + i + kF), acc1);
  }
  for (; i + kF <= n; i += kF) acc0 = fmadd(fload(a + i), fload(b + i), acc0);
  float s = fhsum(fadd(acc0, acc1));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const F av = fset1(a);
  int64_t i = 0;
  for (; i + kF <= n; i += kF) fstore(y + i, fmadd(av, fload(x + i), fload(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

void scale_f32(float a, float* y, int64_t n) {
  const F av = fset1(a);
  int64_t i = 0;
  for (; i + kF <= n; i += kF) fstore(y + i, fmul(av, fload(y + i)));
  for (; i < n; i++) y[i] *= a;
}

void rmsnorm_f32(const float* x, const float* w, float* y, int64_t n, float eps) {
  const float ss = dot_f32(x, x, n);
  const float inv = 1.0f / sqrtf(ss / (float)n + eps);
  const F iv = fset1(inv);
  int64_t i = 0;
  for (; i + kF <= n; i += kF) fstore(y + i, fmul(fmul(fload(x + i), iv), fload(w + i)));
  for (; i < n; i++) y[i] = x[i] * inv * w[i];
}

// Four independent load streams of full vectors, prefetched as far ahead as the packed
// kernels prefetch (without it a reader thread measured below what the kernels reach):
// the memory-bandwidth probe.
uint64_t read_bytes(const void* p, size_t n) {
  constexpr size_t V = sizeof(PI);
  const uint8_t* q = (const uint8_t*)p;
  PI a0 = pzero(), a1 = pzero(), a2 = pzero(), a3 = pzero();
  size_t i = 0;
  for (; i + 4 * V <= n; i += 4 * V) {
    for (size_t o = 0; o < 4 * V; o += 64) prefetch(q + i + kPackPrefetchBytes + o);
    a0 = padd(a0, pload(q + i));
    a1 = padd(a1, pload(q + i + V));
    a2 = padd(a2, pload(q + i + 2 * V));
    a3 = padd(a3, pload(q + i + 3 * V));
  }
  uint32_t lanes[V / 4];
  memcpy(lanes, &a0, V);
  uint64_t s = 0;
  for (uint32_t v : lanes) s += v;
  memcpy(lanes, &a1, V);
  for (uint32_t v : lanes) s += v;
  memcpy(lanes, &a2, V);
  for (uint32_t v : lanes) s += v;
  memcpy(lanes, &a3, V);
  for (uint32_t v : lanes) s += v;
  for (; i < n; i++) s += q[i];
  return s;
}

// Activation quantisers: the reference's arithmetic (amax, d = amax / 127, q = x * (1 / d)
// rounded as it rounds), vectorised; the scale and sums per block as the reference.
float block_amax(const float* x, int64_t n) {
  F m = fzero();
  for (int64_t k = 0; k < n; k += kF) m = fmaxv(m, fabsv(fload(x + k)));
  return fhmax(m);
}

void quantize_q8_1(const float* x, void* yv, int64_t n) {
  block_q8_1* y = (block_q8_1*)yv;
  for (int64_t i = 0; i < n / AF_QK; i++, x += AF_QK) {
    const float d = block_amax(x, AF_QK) / 127.0f;
    const F id = fset1(d != 0 ? 1.0f / d : 0.0f);
    int sum = 0;
    for (int k = 0; k < AF_QK; k += kF) sum += fquant_i8(y[i].qs + k, fmul(fload(x + k), id), true);
    y[i].d = af_fp16_to_fp32(af_fp32_to_fp16(d));
    y[i].s = y[i].d * (float)sum;
  }
}

void quantize_q8_K(const float* x, void* yv, int64_t n) {
  block_q8_K* y = (block_q8_K*)yv;
  for (int64_t i = 0; i < n / AF_QK_K; i++, x += AF_QK_K) {
    const float d = block_amax(x, AF_QK_K) / 127.0f;
    const F id = fset1(d != 0 ? 1.0f / d : 0.0f);
    for (int g = 0; g < AF_QK_K / 16; g++) {
      int s = 0;
      for (int k = 16 * g; k < 16 * g + 16; k += kF) s += fquant_i8(y[i].qs + k, fmul(fload(x + k), id), false);
      y[i].bsums[g] = (int16_t)s;
    }
    y[i].d = d;
  }
}

}  // namespace

void fill_simd_quant(af_kernel_table* t);
void fill_simd_packed(af_kernel_table* t);

void fill_simd_table(af_kernel_table* t) {
  t->matvec[AF_F32] = matvec_tiles<KFloat<AF_F32>>;
  t->matmul[AF_F32] = matmul_tiles<KFloat<AF_F32>>;
  t->matvec[AF_F16] = matvec_tiles<KFloat<AF_F16>>;
  t->matmul[AF_F16] = matmul_tiles<KFloat<AF_F16>>;
  t->matvec[AF_BF16] = matvec_tiles<KFloat<AF_BF16>>;
  t->matmul[AF_BF16] = matmul_tiles<KFloat<AF_BF16>>;
  t->dot_f32 = dot_f32;
  t->axpy_f32 = axpy_f32;
  t->scale_f32 = scale_f32;
  t->rmsnorm_f32 = rmsnorm_f32;
  t->read_bytes = read_bytes;
  t->quantize_q8_1 = quantize_q8_1;
  t->quantize_q8_K = quantize_q8_K;
  fill_simd_quant(t);
  fill_simd_packed(t);
}

}  // namespace AF_NS

#endif
