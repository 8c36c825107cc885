// The GELU table of ggml's CPU backend (ggml-cpu.c, ggml_table_gelu_f16): the tanh
// approximation of each f16 value, rounded to f16. Built once, with baseline flags (no FMA
// contraction), so the scalar, AVX2 and AVX-512 paths share the same values.
#include <math.h>
#include <stdint.h>

#include "activeflow/kernels.h"

namespace {

float GeluTanh(float x) {
  const float kSqrt2OverPi = 0.79788456080286535587989211986876f, kCoefA = 0.044715f;
  return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

}  // namespace

extern "C" const uint16_t* af_gelu_f16_table() {
  static const uint16_t* table = [] {
    static uint16_t t[1 << 16];  // [f16 bits of x] -> f16 bits of gelu(x)
    for (uint32_t i = 0; i < (1u << 16); i++) t[i] = af_fp32_to_fp16(GeluTanh(af_fp16_to_fp32(static_cast<uint16_t>(i))));
    return t;
  }();
  return table;
}
