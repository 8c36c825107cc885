// Per-ISA table of the split-column kernels (native/kernels/isa/colx_axpy.cpp, compiled once
// per ISA); colx_dispatch.cpp picks the one matching af_isa_name(). Indexed by af_type.
#ifndef ACTIVEFLOW_COLX_TABLE_H
#define ACTIVEFLOW_COLX_TABLE_H

#include <stdint.h>

#include "kernels/kernel_table.h"

typedef void (*af_colx_axpy_fn)(const void* const* codes, const int32_t* ch, const float* a, int64_t n,
                                const void* scales, int64_t n_out, float* y, int64_t e0, int64_t e1);
typedef void (*af_colx_batch_fn)(const void* const* codes, const int32_t* ch, const float* a, int64_t n,
                                 int64_t nb, const void* scales, int64_t n_out, float* y, int64_t ldy,
                                 int64_t e0, int64_t e1);

struct af_colx_table {
  const char* name;
  af_colx_axpy_fn axpy[AF_TYPE_SLOTS];
  af_colx_batch_fn batch[AF_TYPE_SLOTS];
};

const af_colx_table* af_colx_table_scalar();
#if defined(AF_HAVE_X86) || defined(AF_ISA_AVX2) || defined(AF_ISA_AVX512)
const af_colx_table* af_colx_table_avx2();
const af_colx_table* af_colx_table_avx512();
#endif

#endif
