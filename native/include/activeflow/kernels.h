// Plain C API of the compute kernels. No Node-API in here: the same sources build into the
// Node addon now and into WebAssembly later. Threading is the caller's: every kernel takes a
// row range so callers split work across their own threads.
#ifndef ACTIVEFLOW_KERNELS_H
#define ACTIVEFLOW_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Tensor types; the numeric values are GGML's so GGUF type ids map 1:1.
enum af_type {
  AF_F32 = 0,
  AF_F16 = 1,
  AF_Q4_0 = 2,
  AF_Q4_1 = 3,
  AF_Q8_0 = 8,
  AF_Q8_1 = 9,  // activation-only type (vec_dot partner of Q4_1)
  AF_Q4_K = 12,
  AF_Q5_K = 13,
  AF_Q6_K = 14,
  AF_Q8_K = 15,  // activation-only type (vec_dot partner of the K-quants)
  AF_BF16 = 30,
};

// 1 if the type is one the kernels support as a weight type, else 0.
int af_type_supported(int type);
// Elements per block (1 for float types, 32 or 256 for quantised ones).
int64_t af_type_block_elems(int type);
// Bytes per block.
size_t af_type_block_bytes(int type);
// Bytes of one row of n elements (n must be a multiple of the block size).
size_t af_row_bytes(int type, int64_t n);

// Activation side of a dot product: each weight type has a partner ("vec-dot type") that
// the float activation is quantised to once per matvec (Q8_0 for Q4_0/Q8_0, Q8_1 for Q4_1,
// Q8_K for the K-quants, F32 for the float types).
int af_vec_dot_type(int weight_type);
// Bytes needed to hold n activations quantised for weight_type.
size_t af_act_bytes(int weight_type, int64_t n);
// Quantise n floats (n a multiple of the weight type's block size) for weight_type.
void af_quantize_act(int weight_type, const float* x, void* xq, int64_t n);

// y[r - r0] = dot(row r of W, x) for r in [r0, r1). W rows are row_stride bytes apart,
// each of n elements; xq comes from af_quantize_act(type, ...).
void af_matvec(int type, const void* w, size_t row_stride, const void* xq, float* y, int64_t n,
               int64_t r0, int64_t r1);
// Batched form for prefill: Y[b * ldy + r] = dot(row r of W, x_b) for b in [0, nb), r in
// [r0, r1). x_b = (const char*)xq + b * xq_stride. Blocks over rows and batch so each weight
// row is read once per tile.
void af_matmul(int type, const void* w, size_t row_stride, const void* xq, size_t xq_stride,
               float* y, int64_t ldy, int64_t n, int64_t nb, int64_t r0, int64_t r1);

// Row-packed layout of the in-DRAM weights. Rows go in groups of AF_PACK_ROWS; a group is
// stored block by block, and each block field of the group's rows is stored together:
// half-float scales as [row], byte fields (codes, packed sub-scales) in 4-byte chunks
// [chunk][row][4]. One 32-bit SIMD lane then holds 4 codes of one row, so a single dot
// instruction serves AF_PACK_ROWS rows and the block scales load as one vector. A group is
// a permutation of its plain bytes (same size); rows after the last whole group keep the
// plain layout.
#define AF_PACK_ROWS 16
// 1 if the type has a packed layout (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K), else 0.
int af_pack_supported(int type);
// Packs a plain tensor of `rows` rows from src into dst (same size, not overlapping): whole
// groups packed, the tail rows copied.
void af_pack_rows(int type, const void* src, void* dst, size_t row_bytes, int64_t rows);
// Copies row r of a packed tensor of `rows` rows to `out` in the plain layout.
void af_unpack_row(int type, const void* w, size_t row_bytes, int64_t rows, int64_t r, void* out);
// af_matvec / af_matmul over a packed tensor of `rows` rows (any row range [r0, r1)).
void af_matvec_packed(int type, const void* w, size_t row_bytes, int64_t rows, const void* xq,
                      float* y, int64_t n, int64_t r0, int64_t r1);
void af_matmul_packed(int type, const void* w, size_t row_bytes, int64_t rows, const void* xq,
                      size_t xq_stride, float* y, int64_t ldy, int64_t n, int64_t nb, int64_t r0,
                      int64_t r1);

// Reads n bytes (a multiple of 64, 64-byte aligned) as fast as this ISA can and returns a
// checksum of them, so the reads cannot be optimised away: the memory-bandwidth probe.
uint64_t af_read_bytes(const void* p, size_t n);

// Dequantise one row of n elements to float.
void af_dequantize_row(int type, const void* src, float* dst, int64_t n);
// Reference quantisation of one row (round-to-nearest, as ggml's reference quantisers).
// Returns bytes written. Supported for every weight type.
size_t af_quantize_row(int type, const float* src, void* dst, int64_t n);

// Float vector primitives used by attention and norms.
float af_dot_f32(const float* a, const float* b, int64_t n);
void af_axpy_f32(float a, const float* x, float* y, int64_t n);  // y += a * x
void af_scale_f32(float a, float* y, int64_t n);                   // y *= a
// y = x * w / sqrt(mean(x^2) + eps)
void af_rmsnorm_f32(const float* x, const float* w, float* y, int64_t n, float eps);
// out[i] = silu(gate[i]) * up[i]
void af_silu_mul_f32(const float* gate, const float* up, float* out, int64_t n);
// out[i] = gelu(gate[i]) * up[i], GELU's tanh approximation rounded through f16 as ggml's
// CPU GeGLU does (Gemma's FFN)
void af_gelu_mul_f32(const float* gate, const float* up, float* out, int64_t n);
// In-place softmax of n floats; returns nothing, max-subtracted for stability.
void af_softmax_f32(float* x, int64_t n);

// ISA selection. Chosen once from cpuid, unless ACTIVEFLOW_ISA=scalar|avx2|avx512 forces a
// path (an unavailable forced path is an error, reported by af_isa_init).
// Returns 0 on success, else writes a message to err (size errlen) and returns -1.
int af_isa_init(char* err, size_t errlen);
const char* af_isa_name(void);
// Force a path at run time (tests); returns 0 on success, -1 if the CPU lacks it.
int af_isa_set(const char* name);
// Comma-separated list of the paths this CPU can run, e.g. "scalar,avx2,avx512".
const char* af_isa_available(void);

// IEEE half and bfloat16 conversions (exact, scalar).
float af_fp16_to_fp32(uint16_t h);
uint16_t af_fp32_to_fp16(float f);
float af_bf16_to_fp32(uint16_t h);
uint16_t af_fp32_to_bf16(float f);

#ifdef __cplusplus
}
#endif

#endif
