// Per-ISA table of the column gather-axpy kernels (native/kernels/isa/col_axpy.cpp, compiled
// once per ISA); col_dispatch.cpp picks the one matching af_isa_name(). Indexed by af_type.
#ifndef ACTIVEFLOW_COL_TABLE_H
#define ACTIVEFLOW_COL_TABLE_H

#include <stdint.h>

#include "kernels/kernel_table.h"

typedef void (*af_col_axpy_fn)(const void* const* cols, const float* a, int64_t n_cols, float* y,
                               int64_t e0, int64_t e1);
typedef void (*af_col_batch_fn)(const void* const* cols, const float* a, int64_t n_cols,
                                int64_t nb, float* y, int64_t ldy, int64_t e0, int64_t e1);

struct af_col_table {
  const char* name;
  af_col_axpy_fn axpy[AF_TYPE_SLOTS];
  af_col_batch_fn batch[AF_TYPE_SLOTS];
};

const af_col_table* af_col_table_scalar();
#if defined(AF_HAVE_X86) || defined(AF_ISA_AVX2) || defined(AF_ISA_AVX512)
const af_col_table* af_col_table_avx2();
const af_col_table* af_col_table_avx512();
#endif

#endif
