// Round-to-nearest reference quantisers of the 32-element formats (as ggml's *_ref ones),
// their dequantisers, and the af_quantize_row / af_dequantize_row entry points.
#include <math.h>
#include <string.h>

#include "activeflow/kernels.h"
#include "kernels/quantize_impl.h"

void af_quantize_q4_0(const float* x, block_q4_0* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, x += AF_QK) {
    // The value of largest magnitude maps to code 0 (-8), keeping its sign.
    float amax = 0, vmax = 0;
    for (int k = 0; k < AF_QK; k++) {
      if (fabsf(x[k]) > amax) amax = fabsf(x[k]), vmax = x[k];
    }
    const float d = vmax / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = af_fp32_to_fp16(d);
    for (int k = 0; k < AF_QK / 2; k++) {
      int q0 = (int)(x[k] * id + 8.5f), q1 = (int)(x[k + AF_QK / 2] * id + 8.5f);
      q0 = q0 > 15 ? 15 : q0;
      q1 = q1 > 15 ? 15 : q1;
      y[i].qs[k] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

void af_quantize_q4_1(const float* x, block_q4_1* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, x += AF_QK) {
    float mn = x[0], mx = x[0];
    for (int k = 1; k < AF_QK; k++) mn = fminf(mn, x[k]), mx = fmaxf(mx, x[k]);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = af_fp32_to_fp16(d);
    y[i].m = af_fp32_to_fp16(mn);
    for (int k = 0; k < AF_QK / 2; k++) {
      int q0 = (int)((x[k] - mn) * id + 0.5f), q1 = (int)((x[k + AF_QK / 2] - mn) * id + 0.5f);
      q0 = q0 > 15 ? 15 : q0;
      q1 = q1 > 15 ? 15 : q1;
      y[i].qs[k] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

void af_quantize_q8_0(const float* x, block_q8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, x += AF_QK) {
    float amax = 0;
    for (int k = 0; k < AF_QK; k++) amax = fmaxf(amax, fabsf(x[k]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = af_fp32_to_fp16(d);
    for (int k = 0; k < AF_QK; k++) y[i].qs[k] = (int8_t)roundf(x[k] * id);
  }
}

void af_quantize_q8_1(const float* x, block_q8_1* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, x += AF_QK) {
    float amax = 0;
    for (int k = 0; k < AF_QK; k++) amax = fmaxf(amax, fabsf(x[k]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int k = 0; k < AF_QK; k++) {
      y[i].qs[k] = (int8_t)roundf(x[k] * id);
      sum += y[i].qs[k];
    }
    // The scale rounded to a half as llama.cpp's Q8_0 / Q8_1 store it, so the dots match
    // its dots to float rounding; d * sum is exact in float (11 x 12 significant bits).
    y[i].d = af_fp16_to_fp32(af_fp32_to_fp16(d));
    y[i].s = y[i].d * (float)sum;
  }
}

void af_dequantize_q4_0(const block_q4_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, y += AF_QK) {
    const float d = af_fp16_to_fp32(x[i].d);
    for (int k = 0; k < AF_QK / 2; k++) {
      y[k] = ((x[i].qs[k] & 0xF) - 8) * d;
      y[k + AF_QK / 2] = ((x[i].qs[k] >> 4) - 8) * d;
    }
  }
}

void af_dequantize_q4_1(const block_q4_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, y += AF_QK) {
    const float d = af_fp16_to_fp32(x[i].d), m = af_fp16_to_fp32(x[i].m);
    for (int k = 0; k < AF_QK / 2; k++) {
      y[k] = (x[i].qs[k] & 0xF) * d + m;
      y[k + AF_QK / 2] = (x[i].qs[k] >> 4) * d + m;
    }
  }
}

void af_dequantize_q8_0(const block_q8_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, y += AF_QK) {
    const float d = af_fp16_to_fp32(x[i].d);
    for (int k = 0; k < AF_QK; k++) y[k] = x[i].qs[k] * d;
  }
}

void af_dequantize_q8_1(const block_q8_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / AF_QK; i++, y += AF_QK) {
    for (int k = 0; k < AF_QK; k++) y[k] = x[i].qs[k] * x[i].d;
  }
}

extern "C" size_t af_quantize_row(int type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case AF_F32: memcpy(dst, src, (size_t)n * 4); break;
    case AF_F16:
      for (int64_t i = 0; i < n; i++) ((uint16_t*)dst)[i] = af_fp32_to_fp16(src[i]);
      break;
    case AF_BF16:
      for (int64_t i = 0; i < n; i++) ((uint16_t*)dst)[i] = af_fp32_to_bf16(src[i]);
      break;
    case AF_Q4_0: af_quantize_q4_0(src, (block_q4_0*)dst, n); break;
    case AF_Q4_1: af_quantize_q4_1(src, (block_q4_1*)dst, n); break;
    case AF_Q8_0: af_quantize_q8_0(src, (block_q8_0*)dst, n); break;
    case AF_Q8_1: af_quantize_q8_1(src, (block_q8_1*)dst, n); break;
    case AF_Q4_K: af_quantize_q4_K(src, (block_q4_K*)dst, n); break;
    case AF_Q5_K: af_quantize_q5_K(src, (block_q5_K*)dst, n); break;
    case AF_Q6_K: af_quantize_q6_K(src, (block_q6_K*)dst, n); break;
    case AF_Q8_K: af_quantize_q8_K(src, (block_q8_K*)dst, n); break;
    default: return 0;
  }
  return af_row_bytes(type, n);
}

extern "C" void af_dequantize_row(int type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case AF_F32: memcpy(dst, src, (size_t)n * 4); break;
    case AF_F16:
      for (int64_t i = 0; i < n; i++) dst[i] = af_fp16_to_fp32(((const uint16_t*)src)[i]);
      break;
    case AF_BF16:
      for (int64_t i = 0; i < n; i++) dst[i] = af_bf16_to_fp32(((const uint16_t*)src)[i]);
      break;
    case AF_Q4_0: af_dequantize_q4_0((const block_q4_0*)src, dst, n); break;
    case AF_Q4_1: af_dequantize_q4_1((const block_q4_1*)src, dst, n); break;
    case AF_Q8_0: af_dequantize_q8_0((const block_q8_0*)src, dst, n); break;
    case AF_Q8_1: af_dequantize_q8_1((const block_q8_1*)src, dst, n); break;
    case AF_Q4_K: af_dequantize_q4_K((const block_q4_K*)src, dst, n); break;
    case AF_Q5_K: af_dequantize_q5_K((const block_q5_K*)src, dst, n); break;
    case AF_Q6_K: af_dequantize_q6_K((const block_q6_K*)src, dst, n); break;
    case AF_Q8_K: af_dequantize_q8_K((const block_q8_K*)src, dst, n); break;
    default: break;
  }
}
