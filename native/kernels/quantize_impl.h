// Reference quantisers and dequantisers per format (quantize.cpp, quantize_k.cpp). n is a
// multiple of the format's block size; callers validate.
#ifndef ACTIVEFLOW_QUANTIZE_IMPL_H
#define ACTIVEFLOW_QUANTIZE_IMPL_H

#include <stdint.h>

#include "activeflow/quants.h"

void af_quantize_q4_0(const float* x, block_q4_0* y, int64_t n);
void af_quantize_q4_1(const float* x, block_q4_1* y, int64_t n);
void af_quantize_q8_0(const float* x, block_q8_0* y, int64_t n);
void af_quantize_q8_1(const float* x, block_q8_1* y, int64_t n);
void af_quantize_q4_K(const float* x, block_q4_K* y, int64_t n);
void af_quantize_q5_K(const float* x, block_q5_K* y, int64_t n);
void af_quantize_q6_K(const float* x, block_q6_K* y, int64_t n);
void af_quantize_q8_K(const float* x, block_q8_K* y, int64_t n);

void af_dequantize_q4_0(const block_q4_0* x, float* y, int64_t n);
void af_dequantize_q4_1(const block_q4_1* x, float* y, int64_t n);
void af_dequantize_q8_0(const block_q8_0* x, float* y, int64_t n);
void af_dequantize_q8_1(const block_q8_1* x, float* y, int64_t n);
void af_dequantize_q4_K(const block_q4_K* x, float* y, int64_t n);
void af_dequantize_q5_K(const block_q5_K* x, float* y, int64_t n);
void af_dequantize_q6_K(const block_q6_K* x, float* y, int64_t n);
void af_dequantize_q8_K(const block_q8_K* x, float* y, int64_t n);

#endif
