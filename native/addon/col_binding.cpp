// Synchronous column gather-axpy entry points for tests and benchmarks (af_col_axpy and
// af_col_axpy_batch on caller-owned typed arrays, y updated in place). Every size is checked
// here so a kernel never reads or writes out of bounds; errors carry code BAD_ARGUMENT.
#include <string>
#include <vector>

#include "activeflow/col_kernels.h"
#include "activeflow/kernels.h"
#include "addon/bindings.h"

namespace activeflow {

namespace {


Napi::Float32Array ArgF32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    BadArgument(info.Env(), std::string(fn) + ": argument '" + name + "' must be a Float32Array");
  }
  return info[i].As<Napi::Float32Array>();
}

int ArgColType(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsNumber()) BadArgument(info.Env(), std::string(fn) + ": argument 'type' must be a number (GGML type id)");
  const int type = info[0].As<Napi::Number>().Int32Value();
  if (!af_col_supported(type)) {
    BadArgument(info.Env(), std::string(fn) + ": type " + std::to_string(type) +
                        " has no column kernel (expected F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K or Q6_K)");
  }
  return type;
}

// Checks [e0, e1) against the type's blocks: e0 on a block boundary, e1 too unless the type
// is a float type (block 1, so any e1 is a boundary).
void CheckRange(Napi::Env env, const char* fn, int type, int64_t e0, int64_t e1) {
  const int64_t blk = af_type_block_elems(type);
  if (e1 < e0) BadArgument(env, std::string(fn) + ": e1 = " + std::to_string(e1) + " is below e0 = " + std::to_string(e0));
  if (e0 % blk != 0 || e1 % blk != 0) {
    BadArgument(env, std::string(fn) + ": range [" + std::to_string(e0) + ", " + std::to_string(e1) +
                 ") must start and end on a multiple of the block size " + std::to_string(blk) + " of type " +
                 std::to_string(type));
  }
}

// Column pointers from a JS array of Uint8Array, each long enough for elements [0, e1).
std::vector<const void*> ArgCols(const Napi::CallbackInfo& info, size_t i, const char* fn, int type, int64_t e1) {
  if (info.Length() <= i || !info[i].IsArray()) BadArgument(info.Env(), std::string(fn) + ": argument 'cols' must be an array of Uint8Array");
  const Napi::Array arr = info[i].As<Napi::Array>();
  const int64_t blk = af_type_block_elems(type);
  const size_t need = (size_t)((e1 + blk - 1) / blk) * af_type_block_bytes(type);
  std::vector<const void*> cols(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    const Napi::Value v = arr.Get(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      BadArgument(info.Env(), std::string(fn) + ": cols[" + std::to_string(k) + "] must be a Uint8Array");
    }
    const Napi::Uint8Array u = v.As<Napi::Uint8Array>();
    if (u.ByteLength() < need) {
      BadArgument(info.Env(), std::string(fn) + ": cols[" + std::to_string(k) + "] holds " + std::to_string(u.ByteLength()) +
                          " bytes, elements [0, " + std::to_string(e1) + ") of type " + std::to_string(type) +
                          " need " + std::to_string(need));
    }
    cols[k] = u.Data();
  }
  return cols;
}

// colAxpy(type, cols, a, y, e0, e1): y[e] += sum_i a[i] * col_i[e], e in [e0, e1).
Napi::Value ColAxpy(const Napi::CallbackInfo& info) {
  const char* fn = "colAxpy";
  const int type = ArgColType(info, fn);
  const Napi::Float32Array a = ArgF32(info, 2, fn, "a");
  Napi::Float32Array y = ArgF32(info, 3, fn, "y");
  const int64_t e0 = ArgInt(info, 4, fn, "e0", 0);
  const int64_t e1 = ArgInt(info, 5, fn, "e1", 0);
  CheckRange(info.Env(), fn, type, e0, e1);
  if (e1 > (int64_t)y.ElementLength()) {
    BadArgument(info.Env(), std::string(fn) + ": e1 = " + std::to_string(e1) + " is past y (" + std::to_string(y.ElementLength()) + " elements)");
  }
  const std::vector<const void*> cols = ArgCols(info, 1, fn, type, e1);
  if (cols.size() != a.ElementLength()) {
    BadArgument(info.Env(), std::string(fn) + ": " + std::to_string(cols.size()) + " columns but a has " +
                        std::to_string(a.ElementLength()) + " values (one per column expected)");
  }
  af_col_axpy(type, cols.data(), a.Data(), (int64_t)cols.size(), y.Data(), e0, e1);
  return info.Env().Undefined();
}

// colAxpyBatch(type, cols, a, nb, y, ldy, e0, e1): a is [nb][cols.length], y is [nb][ldy].
Napi::Value ColAxpyBatch(const Napi::CallbackInfo& info) {
  const char* fn = "colAxpyBatch";
  const int type = ArgColType(info, fn);
  const Napi::Float32Array a = ArgF32(info, 2, fn, "a");
  const int64_t nb = ArgInt(info, 3, fn, "nb", 1);
  Napi::Float32Array y = ArgF32(info, 4, fn, "y");
  const int64_t ldy = ArgInt(info, 5, fn, "ldy", 0);
  const int64_t e0 = ArgInt(info, 6, fn, "e0", 0);
  const int64_t e1 = ArgInt(info, 7, fn, "e1", 0);
  CheckRange(info.Env(), fn, type, e0, e1);
  if (e1 > ldy) BadArgument(info.Env(), std::string(fn) + ": e1 = " + std::to_string(e1) + " is past ldy = " + std::to_string(ldy));
  if ((int64_t)y.ElementLength() < (nb - 1) * ldy + e1) {
    BadArgument(info.Env(), std::string(fn) + ": y has " + std::to_string(y.ElementLength()) + " elements, nb = " +
                        std::to_string(nb) + " rows of ldy = " + std::to_string(ldy) + " up to e1 = " +
                        std::to_string(e1) + " need " + std::to_string((nb - 1) * ldy + e1));
  }
  const std::vector<const void*> cols = ArgCols(info, 1, fn, type, e1);
  if ((int64_t)a.ElementLength() != nb * (int64_t)cols.size()) {
    BadArgument(info.Env(), std::string(fn) + ": a has " + std::to_string(a.ElementLength()) + " values, expected nb * cols = " +
                        std::to_string(nb * (int64_t)cols.size()));
  }
  af_col_axpy_batch(type, cols.data(), a.Data(), (int64_t)cols.size(), nb, y.Data(), ldy, e0, e1);
  return info.Env().Undefined();
}

}  // namespace

void RegisterColBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("colAxpy", Napi::Function::New(env, ColAxpy, "colAxpy"));
  exports.Set("colAxpyBatch", Napi::Function::New(env, ColAxpyBatch, "colAxpyBatch"));
}

}  // namespace activeflow
