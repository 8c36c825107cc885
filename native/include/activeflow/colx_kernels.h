// Split columns: the sparse linear layer over a quantised source kept exactly at its size.
// A Q4_0 / Q4_1 / Q8_0 weight W[n_out][n_in] (rows of 32-element blocks, as in the GGUF) is
// stored in two parts (docs/FLASH_FORMAT.md section 4):
//   - per input channel j, the integer codes of W[r][j], r = 0..n_out-1 ("codes", on flash):
//     Q4: n_out / 2 bytes in 16-byte chunks, chunk c holding rows 32c..32c+31: byte k has row
//     32c + k in its low nibble and row 32c + 16 + k in its high nibble (Q4_0's own order);
//     Q8_0: n_out signed bytes, row order;
//   - the block parameters of row r, block-column b = j / 32 (shared by the 32 channels of the
//     block-column), as IEEE halves in a "scale plane" (resident), block-column-major:
//     Q4_0, Q8_0: d[b][r] at half index b * n_out + r;
//     Q4_1: d[b][r] at b * 2 * n_out + r and m[b][r] at b * 2 * n_out + n_out + r.
// So W[r][j] = d * q + m exactly as the source dequantises it, with q = nibble - 8 (Q4_0),
// the nibble (Q4_1) or the signed byte (Q8_0), and m = 0 except for Q4_1.
//
// af_colx_axpy: y[e] += sum over i of a[i] * W[e][ch[i]], for e in [e0, e1). Summation order,
// the same in every ISA path, so paths agree bitwise:
//   - the channels are taken in the order given (callers pass them ascending) in runs of
//     consecutive channels with the same block-column b = ch[i] / 32;
//   - per run and row e: s = 0; s = fma(a[i], c_i[e], s) for each i of the run in order, c the
//     code as a float (exact): Q4_0 and Q4_1 nibble - 8, Q8_0 the signed byte;
//     then y[e] = fma(d[b][e], s, y[e]);
//     Q4_1 also: A = 0; A = A + a[i] for each i of the run in order;
//     y[e] = fma(fma(8, d[b][e], m[b][e]), A, y[e]) (the offset of the centred code, m + 8d).
// Consequences the streaming pipeline relies on: a call on a channel list split into
// consecutive chunks at block-column boundaries gives y bitwise equal to one call (y carries
// the state between runs); rows are independent, so splitting [e0, e1) at multiples of 32
// does not change any bit.
#ifndef ACTIVEFLOW_COLX_KERNELS_H
#define ACTIVEFLOW_COLX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define AF_COLX_ROWS 32  // row granularity: n_out, e0 and e1 are multiples of it

#ifdef __cplusplus
extern "C" {
#endif

// 1 if the type (a GGML id) can be stored as split columns (Q4_0, Q4_1, Q8_0), else 0.
int af_colx_supported(int type);
// Bytes of one channel's codes for n_out rows, or -1 if the type is not split or n_out is not
// a positive multiple of AF_COLX_ROWS.
int64_t af_colx_code_bytes(int type, int64_t n_out);
// Bytes of a scale plane of n_out rows and n_in input channels (n_in a multiple of 32), or -1.
int64_t af_colx_scale_bytes(int type, int64_t n_out, int64_t n_in);

// y[e] += sum_{i < n} a[i] * W[e][ch[i]] for e in [e0, e1) (y indexed from 0). codes[i]
// points at row 0 of channel ch[i]'s codes; scales at the plane's start (n_out rows per
// block-column). e0, e1 are multiples of AF_COLX_ROWS. Unsupported types, n <= 0 and empty
// ranges do nothing.
void af_colx_axpy(int type, const void* const* codes, const int32_t* ch, const float* a, int64_t n,
                  const void* scales, int64_t n_out, float* y, int64_t e0, int64_t e1);

// Batched form for prefill: y[bb * ldy + e] += sum_i a[bb * n + i] * W[e][ch[i]] for bb in
// [0, nb). Each code tile is decoded once for all nb rows; row bb gets exactly the bits
// af_colx_axpy would give it.
void af_colx_axpy_batch(int type, const void* const* codes, const int32_t* ch, const float* a,
                        int64_t n, int64_t nb, const void* scales, int64_t n_out, float* y,
                        int64_t ldy, int64_t e0, int64_t e1);

// Conversion (plain C, one ISA): from a source matrix of n_out rows of n_in elements in the
// type's GGUF block format (row r at rows + r * row_bytes), writes
//   af_colx_split_scales: the whole scale plane (af_colx_scale_bytes bytes);
//   af_colx_split_codes: the codes of channels j0 .. j0 + nj - 1, channel j0 + k at
//     out + k * stride (af_colx_code_bytes bytes each).
// Return 0, or -1 for an unsupported type or shape (nothing written).
int af_colx_split_scales(int type, const void* rows, int64_t n_out, int64_t n_in, void* plane);
int af_colx_split_codes(int type, const void* rows, int64_t n_out, int64_t n_in, int64_t j0,
                        int64_t nj, void* out, int64_t stride);

#ifdef __cplusplus
}
#endif

#endif
