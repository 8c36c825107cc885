// Reference float primitives. Compiled for every ISA: the scalar table uses them as they
// are, the SIMD tables for the primitives that have no hand-written version (the compiler
// may still vectorise them with that ISA's flags).
#include <math.h>

#include "activeflow/kernels.h"

#include "kernels/isa/isa.h"

namespace AF_NS {

float dot_f32_ref(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

void axpy_f32_ref(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void scale_f32_ref(float a, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] *= a;
}

void rmsnorm_f32_ref(const float* x, const float* w, float* y, int64_t n, float eps) {
  // Sum of squares in double: n is small and this keeps the scalar path a true reference.
  double ss = 0;
  for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
  const float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

void silu_mul_f32_ref(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// GELU as ggml's CPU GeGLU computes it: looked up per f16-rounded input in a table of
// f16-rounded values (kernels/gelu_table.cpp), exact outside [-10, 10] (ggml vec.h,
// GGML_GELU_FP16), so the FFN activations round as llama.cpp's do on every ISA.
void gelu_mul_f32_ref(const float* gate, const float* up, float* out, int64_t n) {
  const uint16_t* table = af_gelu_f16_table();
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    if (g <= -10.0f) out[i] = 0.0f;
    else if (g >= 10.0f) out[i] = g * up[i];
    else out[i] = af_fp16_to_fp32(table[af_fp32_to_fp16(g)]) * up[i];
  }
}

void softmax_f32_ref(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

}  // namespace AF_NS
