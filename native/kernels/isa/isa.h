// Shared by the per-ISA sources: the namespace each ISA's symbols live in (af_scalar,
// af_avx2, af_avx512) so the three compilations of one file link together.
#ifndef ACTIVEFLOW_ISA_H
#define ACTIVEFLOW_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernel_table.h"

// GELU of every f16 value, rounded to f16 (kernels/gelu_table.cpp, built once with baseline
// flags so every ISA looks up the same values).
extern "C" const uint16_t* af_gelu_f16_table();

#ifndef AF_ISA
#error "native/kernels/isa/*.cpp must be compiled with -DAF_ISA=scalar|avx2|avx512"
#endif

#define AF_CAT2(a, b) a##_##b
#define AF_CAT(a, b) AF_CAT2(a, b)
#define AF_NS AF_CAT(af, AF_ISA)
#define AF_TABLE_FN AF_CAT(af_table, AF_ISA)

namespace AF_NS {

// Scalar reference kernels (ref_kernels.cpp, built for the scalar ISA only).
void matvec_ref(int type, const void* w, size_t row_stride, const void* xq, float* y, int64_t n,
                int64_t r0, int64_t r1);
void packed_ref(int type, const void* w, size_t row_bytes, const void* xq, size_t xq_stride, float* y,
                int64_t ldy, int64_t n, int64_t nb, int64_t groups);
uint64_t read_bytes_ref(const void* p, size_t n);
// Reference float primitives (float_ref.cpp, built for every ISA; SIMD tables use the ones
// without a SIMD version).
float dot_f32_ref(const float* a, const float* b, int64_t n);
void axpy_f32_ref(float a, const float* x, float* y, int64_t n);
void scale_f32_ref(float a, float* y, int64_t n);
void rmsnorm_f32_ref(const float* x, const float* w, float* y, int64_t n, float eps);
void silu_mul_f32_ref(const float* gate, const float* up, float* out, int64_t n);
void gelu_mul_f32_ref(const float* gate, const float* up, float* out, int64_t n);
void softmax_f32_ref(float* x, int64_t n);

// SIMD kernels (simd_*.cpp, built for avx2 and avx512 only).
void fill_simd_table(af_kernel_table* t);

}  // namespace AF_NS

#endif
