// C entry points of the column kernels: forward to the per-ISA table whose name matches the
// kernel ISA in use (af_isa_name()), so af_isa_set in tests switches these paths too.
#include <string.h>

#include "activeflow/col_kernels.h"
#include "activeflow/kernels.h"
#include "kernels/col_table.h"

namespace {

const af_col_table* col_table() {
  const char* name = af_isa_name();
#if defined(AF_HAVE_X86)
  if (strcmp(name, "avx512") == 0) return af_col_table_avx512();
  if (strcmp(name, "avx2") == 0) return af_col_table_avx2();
#endif
  (void)name;
  return af_col_table_scalar();
}

}  // namespace

extern "C" int af_col_supported(int type) {
  return type >= 0 && type < AF_TYPE_SLOTS && af_col_table_scalar()->axpy[type] != nullptr;
}

extern "C" void af_col_axpy(int type, const void* const* cols, const float* a, int64_t n_cols,
                            float* y, int64_t e0, int64_t e1) {
  if (type < 0 || type >= AF_TYPE_SLOTS || e1 <= e0 || n_cols <= 0) return;
  const af_col_axpy_fn f = col_table()->axpy[type];
  if (f) f(cols, a, n_cols, y, e0, e1);
}

extern "C" void af_col_axpy_batch(int type, const void* const* cols, const float* a,
                                  int64_t n_cols, int64_t nb, float* y, int64_t ldy, int64_t e0,
                                  int64_t e1) {
  if (type < 0 || type >= AF_TYPE_SLOTS || e1 <= e0 || n_cols <= 0 || nb <= 0) return;
  const af_col_batch_fn f = col_table()->batch[type];
  if (f) f(cols, a, n_cols, nb, y, ldy, e0, e1);
}
