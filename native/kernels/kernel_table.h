// Per-ISA kernel table: what native/kernels/isa/*.cpp export once per ISA and dispatch.cpp
// picks from at load. Indexed by af_type value; a null slot means "not a weight type".
#ifndef ACTIVEFLOW_KERNEL_TABLE_H
#define ACTIVEFLOW_KERNEL_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define AF_TYPE_SLOTS 32

typedef void (*af_matvec_fn)(const void* w, size_t row_stride, const void* xq, float* y,
                             int64_t n, int64_t r0, int64_t r1);
typedef void (*af_matmul_fn)(const void* w, size_t row_stride, const void* xq, size_t xq_stride,
                             float* y, int64_t ldy, int64_t n, int64_t nb, int64_t r0, int64_t r1);

// Whole groups of a packed tensor (kernels.h, AF_PACK_ROWS): w at the first of `groups`
// groups, Y[b * ldy + j] for the groups' rows j and activations b in [0, nb).
typedef void (*af_packed_fn)(const void* w, size_t row_bytes, const void* xq, size_t xq_stride, float* y,
                             int64_t ldy, int64_t n, int64_t nb, int64_t groups);

struct af_kernel_table {
  const char* name;
  af_matvec_fn matvec[AF_TYPE_SLOTS];
  af_matmul_fn matmul[AF_TYPE_SLOTS];
  af_packed_fn packed[AF_TYPE_SLOTS];
  uint64_t (*read_bytes)(const void* p, size_t n);
  // Activation quantisers (af_quantize_act), bit-identical to the references on every ISA.
  void (*quantize_q8_1)(const float* x, void* y, int64_t n);
  void (*quantize_q8_K)(const float* x, void* y, int64_t n);
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);
  void (*scale_f32)(float a, float* y, int64_t n);
  void (*rmsnorm_f32)(const float* x, const float* w, float* y, int64_t n, float eps);
  void (*silu_mul_f32)(const float* gate, const float* up, float* out, int64_t n);
  void (*gelu_mul_f32)(const float* gate, const float* up, float* out, int64_t n);
  void (*softmax_f32)(float* x, int64_t n);
};

// One table per ISA object (native/kernels/isa/table.cpp compiled with -DAF_ISA=...).
const af_kernel_table* af_table_scalar();
#if defined(AF_HAVE_X86) || defined(AF_ISA_AVX2) || defined(AF_ISA_AVX512)
const af_kernel_table* af_table_avx2();
const af_kernel_table* af_table_avx512();
#endif

#endif
