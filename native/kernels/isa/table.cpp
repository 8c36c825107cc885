// This ISA's kernel table: SIMD kernels where they exist (simd_*.cpp), else the reference.
#include "kernels/isa/isa.h"
#include "kernels/quantize_impl.h"

namespace AF_NS {
namespace {

#if defined(AF_ISA_SCALAR)
// Reference batched form: one matvec per activation; the scalar path favours clarity.
template <int TYPE>
void matvec_t(const void* w, size_t rs, const void* xq, float* y, int64_t n, int64_t r0,
              int64_t r1) {
  matvec_ref(TYPE, w, rs, xq, y, n, r0, r1);
}
template <int TYPE>
void matmul_t(const void* w, size_t rs, const void* xq, size_t xs, float* y, int64_t ldy,
              int64_t n, int64_t nb, int64_t r0, int64_t r1) {
  for (int64_t b = 0; b < nb; b++) {
    matvec_ref(TYPE, w, rs, (const char*)xq + b * xs, y + b * ldy + r0, n, r0, r1);
  }
}
template <int TYPE>
void packed_t(const void* w, size_t rb, const void* xq, size_t xs, float* y, int64_t ldy, int64_t n, int64_t nb,
              int64_t groups) {
  packed_ref(TYPE, w, rb, xq, xs, y, ldy, n, nb, groups);
}
#endif

af_kernel_table build() {
  af_kernel_table t = {};
#define AF_STR2(x) #x
#define AF_STR(x) AF_STR2(x)
  t.name = AF_STR(AF_ISA);
  t.dot_f32 = dot_f32_ref;
  t.axpy_f32 = axpy_f32_ref;
  t.scale_f32 = scale_f32_ref;
  t.rmsnorm_f32 = rmsnorm_f32_ref;
  t.silu_mul_f32 = silu_mul_f32_ref;
  t.gelu_mul_f32 = gelu_mul_f32_ref;
  t.softmax_f32 = softmax_f32_ref;
#if defined(AF_ISA_SCALAR)
#define AF_REF(T)            \
  t.matvec[T] = matvec_t<T>; \
  t.matmul[T] = matmul_t<T>;
  AF_REF(0) AF_REF(1) AF_REF(2) AF_REF(3) AF_REF(8) AF_REF(12) AF_REF(13) AF_REF(14) AF_REF(30)
#undef AF_REF
#define AF_PACKED(T) t.packed[T] = packed_t<T>;
  AF_PACKED(2) AF_PACKED(3) AF_PACKED(8) AF_PACKED(12) AF_PACKED(13) AF_PACKED(14)
#undef AF_PACKED
  t.read_bytes = read_bytes_ref;
  t.quantize_q8_1 = [](const float* x, void* y, int64_t n) { af_quantize_q8_1(x, (block_q8_1*)y, n); };
  t.quantize_q8_K = [](const float* x, void* y, int64_t n) { af_quantize_q8_K(x, (block_q8_K*)y, n); };
#else
  fill_simd_table(&t);
#endif
  return t;
}

const af_kernel_table table = build();

}  // namespace
}  // namespace AF_NS

const af_kernel_table* AF_TABLE_FN() { return &AF_NS::table; }
