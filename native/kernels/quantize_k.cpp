// Simple round-to-nearest reference quantisers of the K-quants (ggml's search for better
// scales is left out: these only have to be correct) and their dequantisers.
#include <math.h>
#include <string.h>

#include "activeflow/kernels.h"
#include "kernels/quantize_impl.h"

namespace {

inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Packs 8 six-bit scales and mins as af_k_scale_min unpacks them.
void pack_scale_min(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  memset(q, 0, AF_K_SCALE_BYTES);
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      q[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-element sub-block an affine scale and
// a non-negative min, both quantised to 6 bits against the super-block's d and dmin.
// Writes the codes (0..nmax) to L and the packed scales; returns d and dmin as halves.
void quantize_k_affine(const float* x, int nmax, uint8_t* L, uint8_t* scales, uint16_t* d_out,
                       uint16_t* dmin_out) {
  float sc[8], mn[8], max_sc = 0, max_mn = 0;
  for (int j = 0; j < 8; j++) {
    float lo = 0, hi = x[32 * j];
    for (int l = 0; l < 32; l++) lo = fminf(lo, x[32 * j + l]), hi = fmaxf(hi, x[32 * j + l]);
    sc[j] = (hi - lo) / nmax;
    mn[j] = -lo;
    max_sc = fmaxf(max_sc, sc[j]);
    max_mn = fmaxf(max_mn, mn[j]);
  }
  const float d = max_sc / 63.0f, dmin = max_mn / 63.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    ls[j] = (uint8_t)clampi(d > 0 ? (int)lrintf(sc[j] / d) : 0, 0, 63);
    lm[j] = (uint8_t)clampi(dmin > 0 ? (int)lrintf(mn[j] / dmin) : 0, 0, 63);
  }
  pack_scale_min(ls, lm, scales);
  *d_out = af_fp32_to_fp16(d);
  *dmin_out = af_fp32_to_fp16(dmin);
  // Codes against the scales as stored, so rounding of d/dmin is accounted for.
  const float dq = af_fp16_to_fp32(*d_out), mq = af_fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; j++) {
    const float dl = dq * ls[j], ml = mq * lm[j];
    for (int l = 0; l < 32; l++) {
      L[32 * j + l] = (uint8_t)(dl > 0 ? clampi((int)lrintf((x[32 * j + l] + ml) / dl), 0, nmax) : 0);
    }
  }
}

}  // namespace

void af_quantize_q4_K(const float* x, block_q4_K* y, int64_t n) {
  uint8_t L[AF_QK_K];
  for (int64_t i = 0; i < n / AF_QK_K; i++, x += AF_QK_K) {
    quantize_k_affine(x, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
    for (int g = 0; g < 4; g++) {
      for (int l = 0; l < 32; l++) y[i].qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
    }
  }
}

void af_quantize_q5_K(const float* x, block_q5_K* y, int64_t n) {
  uint8_t L[AF_QK_K];
  for (int64_t i = 0; i < n / AF_QK_K; i++, x += AF_QK_K) {
    quantize_k_affine(x, 31, L, y[i].scales, &y[i].d, &y[i].dmin);
    memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int g = 0; g < 4; g++) {
      for (int l = 0; l < 32; l++) {
        const int a = L[64 * g + l], b = L[64 * g + 32 + l];
        y[i].qs[32 * g + l] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
        y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * g)) | ((b >> 4) << (2 * g + 1)));
      }
    }
  }
}

void af_quantize_q6_K(const float* x, block_q6_K* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK_K; i++, x += AF_QK_K) {
    // Per 16-group: the value of largest magnitude maps to -32; then the 16 group scales
    // are quantised to int8 the same way against d.
    float sc[16], smax = 0;
    for (int g = 0; g < 16; g++) {
      float vmax = 0;
      for (int l = 0; l < 16; l++) {
        if (fabsf(x[16 * g + l]) > fabsf(vmax)) vmax = x[16 * g + l];
      }
      sc[g] = vmax / -32.0f;
      if (fabsf(sc[g]) > fabsf(smax)) smax = sc[g];
    }
    const float iscale = smax != 0 ? -128.0f / smax : 0.0f;
    for (int g = 0; g < 16; g++) y[i].scales[g] = (int8_t)clampi((int)lrintf(iscale * sc[g]), -128, 127);
    y[i].d = af_fp32_to_fp16(iscale != 0 ? 1.0f / iscale : 0.0f);
    const float d = af_fp16_to_fp32(y[i].d);
    memset(y[i].qh, 0, sizeof(y[i].qh));
    memset(y[i].ql, 0, sizeof(y[i].ql));
    for (int e = 0; e < AF_QK_K; e++) {
      const float dl = d * y[i].scales[e / 16];
      const int q = (dl != 0 ? clampi((int)lrintf(x[e] / dl), -32, 31) : 0) + 32;
      const int h = e / 128, k = (e % 128) / 32, l = e % 32;
      y[i].ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((q & 0xF) << (4 * (k >> 1)));
      y[i].qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
    }
  }
}

void af_quantize_q8_K(const float* x, block_q8_K* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK_K; i++, x += AF_QK_K) {
    float amax = 0;
    for (int k = 0; k < AF_QK_K; k++) amax = fmaxf(amax, fabsf(x[k]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int k = 0; k < AF_QK_K; k++) y[i].qs[k] = (int8_t)lrintf(x[k] * id);
    for (int g = 0; g < AF_QK_K / 16; g++) {
      int s = 0;
      for (int l = 0; l < 16; l++) s += y[i].qs[16 * g + l];
      y[i].bsums[g] = (int16_t)s;
    }
    y[i].d = d;
  }
}

void af_dequantize_q4_K(const block_q4_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK_K; i++) {
    const float d = af_fp16_to_fp32(x[i].d), dmin = af_fp16_to_fp32(x[i].dmin);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      af_k_scale_min(j, x[i].scales, &sc, &m);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      for (int l = 0; l < 32; l++) {
        const int v = (j & 1) ? (q[l] >> 4) : (q[l] & 0xF);
        *y++ = d * sc * v - dmin * m;
      }
    }
  }
}

void af_dequantize_q5_K(const block_q5_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK_K; i++) {
    const float d = af_fp16_to_fp32(x[i].d), dmin = af_fp16_to_fp32(x[i].dmin);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      af_k_scale_min(j, x[i].scales, &sc, &m);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      for (int l = 0; l < 32; l++) {
        const int v = ((j & 1) ? (q[l] >> 4) : (q[l] & 0xF)) | (((x[i].qh[l] >> j) & 1) << 4);
        *y++ = d * sc * v - dmin * m;
      }
    }
  }
}

void af_dequantize_q6_K(const block_q6_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK_K; i++) {
    const float d = af_fp16_to_fp32(x[i].d);
    for (int e = 0; e < AF_QK_K; e++) {
      const int h = e / 128, k = (e % 128) / 32, l = e % 32;
      const int lo = (x[i].ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
      const int q = (lo | (((x[i].qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
      *y++ = d * x[i].scales[e / 16] * q;
    }
  }
}

void af_dequantize_q8_K(const block_q8_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK_K; i++) {
    for (int k = 0; k < AF_QK_K; k++) *y++ = x[i].d * x[i].qs[k];
  }
}
