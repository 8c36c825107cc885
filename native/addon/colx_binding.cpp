// Synchronous entry points of the split-column kernels (activeflow/colx_kernels.h): the
// gather-axpy for tests and benchmarks, and the source -> codes / scale plane split the
// converter runs. Every size is checked here so a kernel never reads or writes out of bounds;
// errors carry code BAD_ARGUMENT.
#include <string>
#include <vector>

#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "addon/bindings.h"

namespace activeflow {

namespace {


template <class T>
T ArgTyped(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, napi_typedarray_type type,
           const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type) {
    BadArgument(info.Env(), std::string(fn) + ": argument '" + name + "' must be a " + what);
  }
  return info[i].As<T>();
}
Napi::Float32Array ArgF32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return ArgTyped<Napi::Float32Array>(info, i, fn, name, napi_float32_array, "Float32Array");
}
Napi::Uint8Array ArgU8(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return ArgTyped<Napi::Uint8Array>(info, i, fn, name, napi_uint8_array, "Uint8Array");
}

int ArgSplitType(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsNumber()) BadArgument(info.Env(), std::string(fn) + ": argument 'type' must be a number (GGML type id)");
  const int type = info[0].As<Napi::Number>().Int32Value();
  if (!af_colx_supported(type)) {
    BadArgument(info.Env(), std::string(fn) + ": type " + std::to_string(type) + " has no split columns (expected Q4_0, Q4_1 or Q8_0)");
  }
  return type;
}

int64_t ArgRows(const Napi::CallbackInfo& info, size_t i, const char* fn, int type) {
  const int64_t n_out = ArgInt(info, i, fn, "nOut", 1);
  if (af_colx_code_bytes(type, n_out) < 0) {
    BadArgument(info.Env(), std::string(fn) + ": nOut = " + std::to_string(n_out) + " must be a multiple of " + std::to_string(AF_COLX_ROWS));
  }
  return n_out;
}

// The arguments shared by colxAxpy and colxAxpyBatch, checked against each other.
struct AxpyArgs {
  int type = 0;
  std::vector<const void*> codes;
  Napi::Int32Array ch;
  Napi::Float32Array a;
  Napi::Uint8Array scales;
  int64_t n_out = 0, e0 = 0, e1 = 0;
};

// (type, codes, ch, a, scales, nOut, ...): a is checked by the caller (its length depends on nb).
AxpyArgs ParseAxpy(const Napi::CallbackInfo& info, const char* fn, size_t range_at) {
  AxpyArgs r;
  Napi::Env env = info.Env();
  r.type = ArgSplitType(info, fn);
  r.ch = ArgTyped<Napi::Int32Array>(info, 2, fn, "ch", napi_int32_array, "Int32Array");
  r.a = ArgF32(info, 3, fn, "a");
  r.scales = ArgU8(info, 4, fn, "scales");
  r.n_out = ArgRows(info, 5, fn, r.type);
  r.e0 = ArgInt(info, range_at, fn, "e0", 0);
  r.e1 = ArgInt(info, range_at + 1, fn, "e1", 0);
  if (r.e1 < r.e0 || r.e0 % AF_COLX_ROWS != 0 || r.e1 % AF_COLX_ROWS != 0 || r.e1 > r.n_out) {
    BadArgument(env, std::string(fn) + ": range [" + std::to_string(r.e0) + ", " + std::to_string(r.e1) + ") must lie in [0, nOut = " +
                 std::to_string(r.n_out) + "] and start and end on multiples of " + std::to_string(AF_COLX_ROWS));
  }
  const int64_t per_col = af_colx_scale_bytes(r.type, r.n_out, 32);
  const int64_t n_in = (int64_t)r.scales.ByteLength() / per_col * 32;
  const int64_t n = (int64_t)r.ch.ElementLength();
  for (int64_t i = 0; i < n; i++) {
    const int32_t c = r.ch[i];
    if (c < 0 || c >= n_in || (i > 0 && c <= r.ch[i - 1])) {
      BadArgument(env, std::string(fn) + ": ch[" + std::to_string(i) + "] = " + std::to_string(c) +
                   " must be above the channel before it and below the scale plane's " + std::to_string(n_in) + " channels");
    }
  }
  if (info.Length() <= 1 || !info[1].IsArray()) BadArgument(env, std::string(fn) + ": argument 'codes' must be an array of Uint8Array");
  const Napi::Array arr = info[1].As<Napi::Array>();
  if ((int64_t)arr.Length() != n) {
    BadArgument(env, std::string(fn) + ": " + std::to_string(arr.Length()) + " code arrays but " + std::to_string(n) + " channel ids");
  }
  const int64_t need = af_colx_code_bytes(r.type, r.n_out);
  r.codes.resize(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    const Napi::Value v = arr.Get(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      BadArgument(env, std::string(fn) + ": codes[" + std::to_string(k) + "] must be a Uint8Array");
    }
    const Napi::Uint8Array u = v.As<Napi::Uint8Array>();
    if ((int64_t)u.ByteLength() < need) {
      BadArgument(env, std::string(fn) + ": codes[" + std::to_string(k) + "] holds " + std::to_string(u.ByteLength()) +
                   " bytes, " + std::to_string(r.n_out) + " rows need " + std::to_string(need));
    }
    r.codes[k] = u.Data();
  }
  return r;
}

// colxAxpy(type, codes, ch, a, scales, nOut, y, e0, e1): y[e] += sum_i a[i] * W[e][ch[i]].
Napi::Value ColxAxpy(const Napi::CallbackInfo& info) {
  const char* fn = "colxAxpy";
  AxpyArgs r = ParseAxpy(info, fn, 7);
  Napi::Float32Array y = ArgF32(info, 6, fn, "y");
  if (r.a.ElementLength() != r.ch.ElementLength()) {
    BadArgument(info.Env(), std::string(fn) + ": a has " + std::to_string(r.a.ElementLength()) + " values for " +
                        std::to_string(r.ch.ElementLength()) + " channels");
  }
  if ((int64_t)y.ElementLength() < r.e1) {
    BadArgument(info.Env(), std::string(fn) + ": e1 = " + std::to_string(r.e1) + " is past y (" + std::to_string(y.ElementLength()) + " elements)");
  }
  af_colx_axpy(r.type, r.codes.data(), r.ch.Data(), r.a.Data(), (int64_t)r.ch.ElementLength(), r.scales.Data(), r.n_out,
               y.Data(), r.e0, r.e1);
  return info.Env().Undefined();
}

// colxAxpyBatch(type, codes, ch, a, scales, nOut, nb, y, ldy, e0, e1): a is [nb][ch.length],
// y is [nb][ldy].
Napi::Value ColxAxpyBatch(const Napi::CallbackInfo& info) {
  const char* fn = "colxAxpyBatch";
  AxpyArgs r = ParseAxpy(info, fn, 9);
  const int64_t nb = ArgInt(info, 6, fn, "nb", 1);
  Napi::Float32Array y = ArgF32(info, 7, fn, "y");
  const int64_t ldy = ArgInt(info, 8, fn, "ldy", 0);
  const int64_t n = (int64_t)r.ch.ElementLength();
  if ((int64_t)r.a.ElementLength() != nb * n) {
    BadArgument(info.Env(), std::string(fn) + ": a has " + std::to_string(r.a.ElementLength()) + " values, expected nb * channels = " +
                        std::to_string(nb * n));
  }
  if (r.e1 > ldy || (int64_t)y.ElementLength() < (nb - 1) * ldy + r.e1) {
    BadArgument(info.Env(), std::string(fn) + ": y has " + std::to_string(y.ElementLength()) + " elements; nb = " + std::to_string(nb) +
                        " rows of ldy = " + std::to_string(ldy) + " up to e1 = " + std::to_string(r.e1) + " do not fit");
  }
  af_colx_axpy_batch(r.type, r.codes.data(), r.ch.Data(), r.a.Data(), n, nb, r.scales.Data(), r.n_out, y.Data(), ldy,
                     r.e0, r.e1);
  return info.Env().Undefined();
}

// The source matrix argument: nOut rows of nIn elements in the type's block format.
void CheckSource(const Napi::CallbackInfo& info, const char* fn, int type, const Napi::Uint8Array& rows, int64_t n_out,
                 int64_t n_in) {
  if (af_colx_scale_bytes(type, n_out, n_in) < 0) {
    BadArgument(info.Env(), std::string(fn) + ": nIn = " + std::to_string(n_in) + " must be a multiple of 32");
  }
  const size_t need = af_row_bytes(type, n_in) * (size_t)n_out;
  if (rows.ByteLength() < need) {
    BadArgument(info.Env(), std::string(fn) + ": rows hold " + std::to_string(rows.ByteLength()) + " bytes, " + std::to_string(n_out) +
                        " rows of " + std::to_string(n_in) + " need " + std::to_string(need));
  }
}

// colxSplitScales(type, rows, nOut, nIn): the scale plane of the matrix, a new Uint8Array.
Napi::Value ColxSplitScales(const Napi::CallbackInfo& info) {
  const char* fn = "colxSplitScales";
  const int type = ArgSplitType(info, fn);
  const Napi::Uint8Array rows = ArgU8(info, 1, fn, "rows");
  const int64_t n_out = ArgRows(info, 2, fn, type);
  const int64_t n_in = ArgInt(info, 3, fn, "nIn", 1);
  CheckSource(info, fn, type, rows, n_out, n_in);
  Napi::Uint8Array plane = Napi::Uint8Array::New(info.Env(), (size_t)af_colx_scale_bytes(type, n_out, n_in));
  af_colx_split_scales(type, rows.Data(), n_out, n_in, plane.Data());
  return plane;
}

// colxSplitCodes(type, rows, nOut, nIn, j0, nj, out, offset, stride): channel j0 + k's codes
// at out[offset + k * stride ...].
Napi::Value ColxSplitCodes(const Napi::CallbackInfo& info) {
  const char* fn = "colxSplitCodes";
  const int type = ArgSplitType(info, fn);
  const Napi::Uint8Array rows = ArgU8(info, 1, fn, "rows");
  const int64_t n_out = ArgRows(info, 2, fn, type);
  const int64_t n_in = ArgInt(info, 3, fn, "nIn", 1);
  CheckSource(info, fn, type, rows, n_out, n_in);
  const int64_t j0 = ArgInt(info, 4, fn, "j0", 0);
  const int64_t nj = ArgInt(info, 5, fn, "nj", 1);
  Napi::Uint8Array out = ArgU8(info, 6, fn, "out");
  const int64_t offset = ArgInt(info, 7, fn, "offset", 0);
  const int64_t code = af_colx_code_bytes(type, n_out);
  const int64_t stride = ArgInt(info, 8, fn, "stride", code);
  if (j0 + nj > n_in) {
    BadArgument(info.Env(), std::string(fn) + ": channels [" + std::to_string(j0) + ", " + std::to_string(j0 + nj) + ") are past nIn = " +
                        std::to_string(n_in));
  }
  if (offset + (nj - 1) * stride + code > (int64_t)out.ByteLength()) {
    BadArgument(info.Env(), std::string(fn) + ": out holds " + std::to_string(out.ByteLength()) + " bytes, " + std::to_string(nj) +
                        " channels at offset " + std::to_string(offset) + " and stride " + std::to_string(stride) + " need " +
                        std::to_string(offset + (nj - 1) * stride + code));
  }
  af_colx_split_codes(type, rows.Data(), n_out, n_in, j0, nj, out.Data() + offset, stride);
  return info.Env().Undefined();
}

Napi::Value ColxCodeBytes(const Napi::CallbackInfo& info) {
  const int type = ArgSplitType(info, "colxCodeBytes");
  return Napi::Number::New(info.Env(), (double)af_colx_code_bytes(type, ArgInt(info, 1, "colxCodeBytes", "nOut", 1)));
}

}  // namespace

void RegisterColxBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("colxAxpy", Napi::Function::New(env, ColxAxpy, "colxAxpy"));
  exports.Set("colxAxpyBatch", Napi::Function::New(env, ColxAxpyBatch, "colxAxpyBatch"));
  exports.Set("colxSplitScales", Napi::Function::New(env, ColxSplitScales, "colxSplitScales"));
  exports.Set("colxSplitCodes", Napi::Function::New(env, ColxSplitCodes, "colxSplitCodes"));
  exports.Set("colxCodeBytes", Napi::Function::New(env, ColxCodeBytes, "colxCodeBytes"));
}

}  // namespace activeflow
