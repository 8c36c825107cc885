// C entry points of the split-column kernels: forward to the per-ISA table whose name matches
// the kernel ISA in use (af_isa_name()), so af_isa_set in tests switches these paths too.
#include <string.h>

#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "kernels/colx_table.h"

namespace {

const af_colx_table* colx_table() {
  const char* name = af_isa_name();
#if defined(AF_HAVE_X86)
  if (strcmp(name, "avx512") == 0) return af_colx_table_avx512();
  if (strcmp(name, "avx2") == 0) return af_colx_table_avx2();
#endif
  (void)name;
  return af_colx_table_scalar();
}

}  // namespace

extern "C" int af_colx_supported(int type) {
  return type >= 0 && type < AF_TYPE_SLOTS && af_colx_table_scalar()->axpy[type] != nullptr;
}

extern "C" void af_colx_axpy(int type, const void* const* codes, const int32_t* ch, const float* a, int64_t n,
                             const void* scales, int64_t n_out, float* y, int64_t e0, int64_t e1) {
  if (!af_colx_supported(type) || e1 <= e0 || n <= 0) return;
  colx_table()->axpy[type](codes, ch, a, n, scales, n_out, y, e0, e1);
}

extern "C" void af_colx_axpy_batch(int type, const void* const* codes, const int32_t* ch, const float* a,
                                   int64_t n, int64_t nb, const void* scales, int64_t n_out, float* y,
                                   int64_t ldy, int64_t e0, int64_t e1) {
  if (!af_colx_supported(type) || e1 <= e0 || n <= 0 || nb <= 0) return;
  colx_table()->batch[type](codes, ch, a, n, nb, scales, n_out, y, ldy, e0, e1);
}
