// ISA choice (cpuid once at init, ACTIVEFLOW_ISA forces a path) and the C entry points that
// forward to the chosen per-ISA kernel table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <vector>

#if defined(AF_HAVE_X86)
#include <cpuid.h>
#endif

#include "activeflow/kernels.h"
#include "kernels/kernel_table.h"

namespace {

struct IsaEntry {
  const char* name;
  const af_kernel_table* (*table)();
  bool (*available)();
};

bool always() { return true; }
#if defined(AF_HAVE_X86)
// CPUID leaf 1, ECX: clang before 16 rejects "f16c" in __builtin_cpu_supports.
bool has_f16c() {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}
// The avx512 objects are built with VNNI (256-bit dpbusd in the integer dots), so a CPU
// with AVX-512 but no VNNI (Skylake-X) runs the avx2 path instead.
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
}
#endif

// Best first.
const IsaEntry kIsas[] = {
#if defined(AF_HAVE_X86)
    {"avx512", af_table_avx512, has_avx512},
    {"avx2", af_table_avx2, has_avx2},
#endif
    {"scalar", af_table_scalar, always},
};

std::atomic<const af_kernel_table*> g_table{nullptr};

const af_kernel_table* table() {
  const af_kernel_table* t = g_table.load(std::memory_order_acquire);
  if (!t) {
    // Not initialised yet: pick the best path silently (af_isa_init reports errors).
    char err[128];
    if (af_isa_init(err, sizeof err) != 0) g_table.store(af_table_scalar());
    t = g_table.load(std::memory_order_acquire);
  }
  return t;
}

const IsaEntry* find(const char* name) {
  for (const IsaEntry& e : kIsas) {
    if (strcmp(e.name, name) == 0) return &e;
  }
  return nullptr;
}

}  // namespace

extern "C" int af_isa_init(char* err, size_t errlen) {
  const char* forced = getenv("ACTIVEFLOW_ISA");
  if (forced && *forced) {
    const IsaEntry* e = find(forced);
    if (!e || !e->available()) {
      snprintf(err, errlen, "ACTIVEFLOW_ISA=%s: %s (this CPU can run: %s)", forced,
               e ? "this CPU lacks that instruction set" : "unknown path, expected scalar|avx2|avx512",
               af_isa_available());
      return -1;
    }
    g_table.store(e->table(), std::memory_order_release);
    return 0;
  }
  for (const IsaEntry& e : kIsas) {
    if (e.available()) {
      g_table.store(e.table(), std::memory_order_release);
      return 0;
    }
  }
  return 0;  // unreachable: scalar is always available
}

extern "C" const char* af_isa_name(void) { return table()->name; }

extern "C" int af_isa_set(const char* name) {
  const IsaEntry* e = find(name);
  if (!e || !e->available()) return -1;
  g_table.store(e->table(), std::memory_order_release);
  return 0;
}

extern "C" const char* af_isa_available(void) {
  static char list[64];
  static std::atomic<bool> ready{false};
  if (!ready.load(std::memory_order_acquire)) {
    // Written once; concurrent first callers write the same bytes.
    char buf[64] = "";
    for (int i = (int)(sizeof kIsas / sizeof kIsas[0]) - 1; i >= 0; i--) {
      if (!kIsas[i].available()) continue;
      if (buf[0]) strcat(buf, ",");
      strcat(buf, kIsas[i].name);
    }
    memcpy(list, buf, sizeof buf);
    ready.store(true, std::memory_order_release);
  }
  return list;
}

extern "C" void af_matvec(int type, const void* w, size_t row_stride, const void* xq, float* y,
                          int64_t n, int64_t r0, int64_t r1) {
  if (type < 0 || type >= AF_TYPE_SLOTS || r1 <= r0) return;
  const af_matvec_fn f = table()->matvec[type];
  if (f) f(w, row_stride, xq, y, n, r0, r1);
}

extern "C" void af_matmul(int type, const void* w, size_t row_stride, const void* xq,
                          size_t xq_stride, float* y, int64_t ldy, int64_t n, int64_t nb,
                          int64_t r0, int64_t r1) {
  if (type < 0 || type >= AF_TYPE_SLOTS || r1 <= r0 || nb <= 0) return;
  const af_matmul_fn f = table()->matmul[type];
  if (f) f(w, row_stride, xq, xq_stride, y, ldy, n, nb, r0, r1);
}

namespace {

// Rows [r0, r1) of a packed tensor; row r of activation b goes to y[b * ldy + r]. Whole
// groups go to the packed kernel, a group cut by the range through a scratch tile, the
// plain tail rows to the plain kernels.
void packed_range(int type, const void* w, size_t rb, int64_t rows, const void* xq, size_t xs, float* y,
                  int64_t ldy, int64_t n, int64_t nb, int64_t r0, int64_t r1) {
  const af_packed_fn f = table()->packed[type];
  const int64_t whole = rows / AF_PACK_ROWS * AF_PACK_ROWS;
  const char* wp = (const char*)w;
  int64_t r = r0;
  while (r < std::min(r1, whole)) {
    const int64_t g0 = r / AF_PACK_ROWS * AF_PACK_ROWS;
    if (r == g0 && r1 >= g0 + AF_PACK_ROWS) {
      const int64_t groups = (std::min(r1, whole) - g0) / AF_PACK_ROWS;
      f(wp + g0 * rb, rb, xq, xs, y + g0, ldy, n, nb, groups);
      r = g0 + groups * AF_PACK_ROWS;
    } else {
      std::vector<float> tile((size_t)nb * AF_PACK_ROWS);
      f(wp + g0 * rb, rb, xq, xs, tile.data(), AF_PACK_ROWS, n, nb, 1);
      const int64_t end = std::min(r1, g0 + AF_PACK_ROWS);
      for (int64_t b = 0; b < nb; b++)
        for (int64_t i = r; i < end; i++) y[b * ldy + i] = tile[b * AF_PACK_ROWS + (i - g0)];
      r = end;
    }
  }
  if (r < r1) {
    if (nb == 1) af_matvec(type, w, rb, xq, y + r, n, r, r1);
    else af_matmul(type, w, rb, xq, xs, y, ldy, n, nb, r, r1);
  }
}

}  // namespace

extern "C" void af_matvec_packed(int type, const void* w, size_t row_bytes, int64_t rows, const void* xq,
                                 float* y, int64_t n, int64_t r0, int64_t r1) {
  if (!af_pack_supported(type) || r1 <= r0) return;
  packed_range(type, w, row_bytes, rows, xq, 0, y - r0, 0, n, 1, r0, r1);
}

extern "C" void af_matmul_packed(int type, const void* w, size_t row_bytes, int64_t rows, const void* xq,
                                 size_t xq_stride, float* y, int64_t ldy, int64_t n, int64_t nb, int64_t r0,
                                 int64_t r1) {
  if (!af_pack_supported(type) || r1 <= r0 || nb <= 0) return;
  packed_range(type, w, row_bytes, rows, xq, xq_stride, y, ldy, n, nb, r0, r1);
}

extern "C" void af_quantize_act(int weight_type, const float* x, void* xq, int64_t n) {
  switch (af_vec_dot_type(weight_type)) {
    case AF_F32: memcpy(xq, x, (size_t)n * sizeof(float)); break;
    case AF_Q8_1: table()->quantize_q8_1(x, xq, n); break;
    case AF_Q8_K: table()->quantize_q8_K(x, xq, n); break;
    default: break;
  }
}

extern "C" uint64_t af_read_bytes(const void* p, size_t n) { return table()->read_bytes(p, n); }

extern "C" float af_dot_f32(const float* a, const float* b, int64_t n) { return table()->dot_f32(a, b, n); }
extern "C" void af_axpy_f32(float a, const float* x, float* y, int64_t n) { table()->axpy_f32(a, x, y, n); }
extern "C" void af_scale_f32(float a, float* y, int64_t n) { table()->scale_f32(a, y, n); }
extern "C" void af_rmsnorm_f32(const float* x, const float* w, float* y, int64_t n, float eps) {
  table()->rmsnorm_f32(x, w, y, n, eps);
}
extern "C" void af_silu_mul_f32(const float* gate, const float* up, float* out, int64_t n) {
  table()->silu_mul_f32(gate, up, out, n);
}
extern "C" void af_gelu_mul_f32(const float* gate, const float* up, float* out, int64_t n) {
  table()->gelu_mul_f32(gate, up, out, n);
}
extern "C" void af_softmax_f32(float* x, int64_t n) { table()->softmax_f32(x, n); }
