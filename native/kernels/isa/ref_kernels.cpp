// Scalar reference dot products, one per weight type: the path every SIMD kernel is tested
// against. Integer sums per block as the SIMD kernels do, so results agree closely.
#include "kernels/isa/isa.h"
#if defined(AF_ISA_SCALAR)

#include <vector>

#include "activeflow/kernels.h"
#include "activeflow/quants.h"

namespace AF_NS {
namespace {

inline float h2f(uint16_t h) { return af_fp16_to_fp32(h); }

float dot_f32_row(const void* w, const void* x, int64_t n) {
  const float* a = (const float*)w;
  const float* b = (const float*)x;
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

float dot_f16_row(const void* w, const void* x, int64_t n) {
  const uint16_t* a = (const uint16_t*)w;
  const float* b = (const float*)x;
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += h2f(a[i]) * b[i];
  return s;
}

float dot_bf16_row(const void* w, const void* x, int64_t n) {
  const uint16_t* a = (const uint16_t*)w;
  const float* b = (const float*)x;
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += af_bf16_to_fp32(a[i]) * b[i];
  return s;
}

// Sum of unsigned 4-bit codes times activation codes over one 32-element block.
inline int dot_nibbles(const uint8_t* qs, const int8_t* x) {
  int s = 0;
  for (int i = 0; i < AF_QK / 2; i++) s += (qs[i] & 0xF) * x[i] + (qs[i] >> 4) * x[i + AF_QK / 2];
  return s;
}

float dot_q4_0_row(const void* w, const void* x, int64_t n) {
  const block_q4_0* a = (const block_q4_0*)w;
  const block_q8_1* b = (const block_q8_1*)x;
  float s = 0;
  for (int64_t i = 0; i < n / AF_QK; i++) {
    const float d = h2f(a[i].d);
    s += d * b[i].d * (float)dot_nibbles(a[i].qs, b[i].qs) - 8.0f * d * b[i].s;
  }
  return s;
}

float dot_q4_1_row(const void* w, const void* x, int64_t n) {
  const block_q4_1* a = (const block_q4_1*)w;
  const block_q8_1* b = (const block_q8_1*)x;
  float s = 0;
  for (int64_t i = 0; i < n / AF_QK; i++) {
    s += h2f(a[i].d) * b[i].d * (float)dot_nibbles(a[i].qs, b[i].qs) + h2f(a[i].m) * b[i].s;
  }
  return s;
}

float dot_q8_0_row(const void* w, const void* x, int64_t n) {
  const block_q8_0* a = (const block_q8_0*)w;
  const block_q8_1* b = (const block_q8_1*)x;
  float s = 0;
  for (int64_t i = 0; i < n / AF_QK; i++) {
    int sumi = 0;
    for (int k = 0; k < AF_QK; k++) sumi += a[i].qs[k] * b[i].qs[k];
    s += h2f(a[i].d) * b[i].d * (float)sumi;
  }
  return s;
}

// Q4_K / Q5_K: value = d*sc*q - dmin*m, so dot = d*dx*sum(sc_j*dot_j) - dmin*dx*sum(m_j*bsum_j).
template <bool FIVE>
float dot_qk45_row(const void* w, const void* x, int64_t n) {
  const block_q8_K* b = (const block_q8_K*)x;
  float s = 0;
  for (int64_t i = 0; i < n / AF_QK_K; i++) {
    const uint8_t* scales;
    const uint8_t* qs;
    const uint8_t* qh = nullptr;
    float d, dmin;
    if (FIVE) {
      const block_q5_K* a = (const block_q5_K*)w + i;
      scales = a->scales, qs = a->qs, qh = a->qh, d = h2f(a->d), dmin = h2f(a->dmin);
    } else {
      const block_q4_K* a = (const block_q4_K*)w + i;
      scales = a->scales, qs = a->qs, d = h2f(a->d), dmin = h2f(a->dmin);
    }
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      af_k_scale_min(j, scales, &sc, &m);
      const uint8_t* q = qs + 32 * (j / 2);
      const int8_t* xq = b[i].qs + 32 * j;
      int dot = 0;
      for (int l = 0; l < 32; l++) {
        int v = (j & 1) ? (q[l] >> 4) : (q[l] & 0xF);
        if (FIVE) v |= ((qh[l] >> j) & 1) << 4;
        dot += v * xq[l];
      }
      sumi += sc * dot;
      summ += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
    }
    s += d * b[i].d * (float)sumi - dmin * b[i].d * (float)summ;
  }
  return s;
}

float dot_q6_K_row(const void* w, const void* x, int64_t n) {
  const block_q6_K* a = (const block_q6_K*)w;
  const block_q8_K* b = (const block_q8_K*)x;
  float s = 0;
  for (int64_t i = 0; i < n / AF_QK_K; i++) {
    int sumi = 0;
    for (int h = 0; h < 2; h++) {
      const uint8_t* ql = a[i].ql + 64 * h;
      const uint8_t* qh = a[i].qh + 32 * h;
      for (int k = 0; k < 4; k++) {
        for (int g = 0; g < 2; g++) {
          const int e0 = 128 * h + 32 * k + 16 * g;  // first element of this 16-group
          int dot = 0;
          for (int l = 16 * g; l < 16 * g + 16; l++) {
            int lo = (k & 2) ? (ql[l + 32 * (k & 1)] >> 4) : (ql[l + 32 * (k & 1)] & 0xF);
            int v = lo | (((qh[l] >> (2 * k)) & 3) << 4);
            dot += v * b[i].qs[e0 + l - 16 * g];
          }
          const int grp = e0 / 16;
          sumi += a[i].scales[grp] * (dot - 32 * b[i].bsums[grp]);
        }
      }
    }
    s += h2f(a[i].d) * b[i].d * (float)sumi;
  }
  return s;
}

typedef float (*dot_row_fn)(const void*, const void*, int64_t);

dot_row_fn dot_row_for(int type) {
  switch (type) {
    case AF_F32: return dot_f32_row;
    case AF_F16: return dot_f16_row;
    case AF_BF16: return dot_bf16_row;
    case AF_Q4_0: return dot_q4_0_row;
    case AF_Q4_1: return dot_q4_1_row;
    case AF_Q8_0: return dot_q8_0_row;
    case AF_Q4_K: return dot_qk45_row<false>;
    case AF_Q5_K: return dot_qk45_row<true>;
    case AF_Q6_K: return dot_q6_K_row;
    default: return nullptr;
  }
}

}  // namespace

void matvec_ref(int type, const void* w, size_t row_stride, const void* xq, float* y, int64_t n,
                int64_t r0, int64_t r1) {
  const dot_row_fn dot = dot_row_for(type);
  for (int64_t r = r0; r < r1; r++) y[r - r0] = dot((const char*)w + r * row_stride, xq, n);
}

// Packed groups: each row unpacked to the plain layout, then the plain reference, so every
// packed kernel is checked against the same reference as the plain ones.
void packed_ref(int type, const void* w, size_t row_bytes, const void* xq, size_t xq_stride, float* y,
                int64_t ldy, int64_t n, int64_t nb, int64_t groups) {
  const dot_row_fn dot = dot_row_for(type);
  std::vector<uint8_t> row(row_bytes);
  const int64_t rows = groups * AF_PACK_ROWS;
  for (int64_t r = 0; r < rows; r++) {
    af_unpack_row(type, w, row_bytes, rows, r, row.data());
    for (int64_t b = 0; b < nb; b++) y[b * ldy + r] = dot(row.data(), (const char*)xq + b * xq_stride, n);
  }
}

uint64_t read_bytes_ref(const void* p, size_t n) {
  const uint64_t* q = (const uint64_t*)p;
  uint64_t s = 0;
  for (size_t i = 0; i < n / 8; i++) s += q[i];
  return s;
}

}  // namespace AF_NS

#endif
