// Column gather-axpy: the sparse linear layer of a decode step. Flash weights are stored
// transposed, one quantised "column" per input channel j (the n_out values W[r][j] as one row
// in the type's block format), and only the active channels are read, so
//   y[e] += sum over the active i of a[i] * dequant(cols[i])[e].
//
// Summation order (the same in every ISA path, so results are bit-identical across paths and
// across any split of [e0, e1) at block boundaries):
//   - the columns are taken in groups of AF_COL_GROUP, i = 0..7, 8..15, ... (last one shorter);
//   - every quantised value is x = d * q + m per sub-block (d the sub-block's float scale, q its
//     integer code, m its offset, 0 for the types without one) and every column term is
//     a*x ~ s*q + a*m with s = a * d rounded to float;
//   - per group and element: b = 0; b = fma(a_i, m_i, b) for each i in order (types with an
//     offset only); r = b; r = fma(s_i, q_i, r) for each i in order; then y[e] = y[e] + r.
//   Float columns (F32, F16, BF16) are the same with s = a, q = the value, no offset.
#ifndef ACTIVEFLOW_COL_KERNELS_H
#define ACTIVEFLOW_COL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define AF_COL_GROUP 8  // columns summed in registers per pass over y

#ifdef __cplusplus
extern "C" {
#endif

// 1 if af_col_axpy supports columns of this type (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K,
// Q5_K, Q6_K), else 0.
int af_col_supported(int type);

// y[e] += sum_{i < n_cols} a[i] * dequant(cols[i])[e] for e in [e0, e1), y indexed from 0 (not
// from e0). cols[i] points at element 0 of column i. e0 is a multiple of the type's block size
// and so is e1 unless it is the column length (float types only; a quantised column is whole
// blocks). Unsupported types and empty ranges do nothing.
void af_col_axpy(int type, const void* const* cols, const float* a, int64_t n_cols, float* y,
                 int64_t e0, int64_t e1);

// Batched form for prefill: y[b * ldy + e] += sum_i a[b * n_cols + i] * dequant(cols[i])[e] for
// b in [0, nb). Each column block is decoded once for all nb activations; every row b gets the
// bits af_col_axpy would give it.
void af_col_axpy_batch(int type, const void* const* cols, const float* a, int64_t n_cols,
                       int64_t nb, float* y, int64_t ldy, int64_t e0, int64_t e1);

#ifdef __cplusplus
}
#endif

#endif
