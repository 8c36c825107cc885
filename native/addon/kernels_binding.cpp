// Synchronous kernel entry points for tests and tools. Each validates its arguments (type,
// sizes) and throws a JS Error with code BAD_ARGUMENT instead of letting a kernel read out
// of bounds; they run on the calling thread, so they are for small inputs only.
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "activeflow/kernels.h"
#include "addon/bindings.h"
#include "model/moe_ffn.h"

namespace activeflow {

namespace {

[[noreturn]] void Bad(Napi::Env env, const std::string& msg) { throw ToJsError(env, "BAD_ARGUMENT", msg); }

int ArgType(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (info.Length() <= i || !info[i].IsNumber()) Bad(info.Env(), std::string(fn) + ": argument 'type' must be a number (GGML type id)");
  const int type = info[i].As<Napi::Number>().Int32Value();
  if (!af_type_supported(type)) {
    Bad(info.Env(), std::string(fn) + ": type " + std::to_string(type) +
                        " is not a supported weight type (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  }
  return type;
}

int64_t ArgCount(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) Bad(info.Env(), std::string(fn) + ": argument '" + name + "' must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 1 && v <= (double)(1LL << 40)) || v != (double)(int64_t)v) {
    Bad(info.Env(), std::string(fn) + ": argument '" + name + "' must be a positive integer, got " + std::to_string(v));
  }
  return (int64_t)v;
}

Napi::Float32Array ArgF32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    Bad(info.Env(), std::string(fn) + ": argument '" + name + "' must be a Float32Array");
  }
  return info[i].As<Napi::Float32Array>();
}

Napi::Uint8Array ArgU8(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Bad(info.Env(), std::string(fn) + ": argument '" + name + "' must be a Uint8Array");
  }
  return info[i].As<Napi::Uint8Array>();
}

void CheckBlocks(Napi::Env env, const char* fn, int type, int64_t n) {
  const int64_t blk = af_type_block_elems(type);
  if (n <= 0 || n % blk != 0) {
    Bad(env, std::string(fn) + ": n = " + std::to_string(n) + " must be a positive multiple of the block size " +
                 std::to_string(blk) + " of type " + std::to_string(type));
  }
}

float ArgFloat(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) Bad(info.Env(), std::string(fn) + ": argument '" + name + "' must be a number");
  return info[i].As<Napi::Number>().FloatValue();
}

Napi::Value IsaName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), af_isa_name()); }

Napi::Value IsaSet(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) Bad(info.Env(), "isaSet: argument 'name' must be a string");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (af_isa_set(name.c_str()) != 0) {
    throw ToJsError(info.Env(), "NATIVE", "isaSet: path '" + name + "' is not available on this CPU (available: " +
                                              af_isa_available() + ")");
  }
  return info.Env().Undefined();
}

Napi::Value IsaAvailable(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  const std::string list = af_isa_available();
  size_t start = 0;
  uint32_t k = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    const size_t end = comma == std::string::npos ? list.size() : comma;
    if (end > start) out.Set(k++, Napi::String::New(info.Env(), list.substr(start, end - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// rowBytes(type, n): bytes of one row of n elements.
Napi::Value RowBytes(const Napi::CallbackInfo& info) {
  const int type = ArgType(info, 0, "rowBytes");
  const int64_t n = ArgCount(info, 1, "rowBytes", "n");
  CheckBlocks(info.Env(), "rowBytes", type, n);
  return Napi::Number::New(info.Env(), (double)af_row_bytes(type, n));
}

Napi::Value QuantizeRow(const Napi::CallbackInfo& info) {
  const int type = ArgType(info, 0, "quantizeRow");
  Napi::Float32Array x = ArgF32(info, 1, "quantizeRow", "x");
  const int64_t n = (int64_t)x.ElementLength();
  CheckBlocks(info.Env(), "quantizeRow", type, n);
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), af_row_bytes(type, n));
  af_quantize_row(type, x.Data(), out.Data(), n);
  return out;
}

Napi::Value DequantizeRow(const Napi::CallbackInfo& info) {
  const int type = ArgType(info, 0, "dequantizeRow");
  Napi::Uint8Array src = ArgU8(info, 1, "dequantizeRow", "bytes");
  const int64_t n = ArgCount(info, 2, "dequantizeRow", "n");
  CheckBlocks(info.Env(), "dequantizeRow", type, n);
  if (src.ByteLength() < af_row_bytes(type, n)) {
    Bad(info.Env(), "dequantizeRow: " + std::to_string(n) + " elements of type " + std::to_string(type) + " need " +
                        std::to_string(af_row_bytes(type, n)) + " bytes, got " + std::to_string(src.ByteLength()));
  }
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), (size_t)n);
  af_dequantize_row(type, src.Data(), out.Data(), n);
  return out;
}

// columnSquares(type, bytes, rows, n, out): adds the squares of each column of a row-major
// [rows][n] matrix, dequantised, to out [n] (f64, so a 7B's long columns keep their digits).
// Column norms for weight-aware selection are the square roots of these sums over a site's tensors.
Napi::Value ColumnSquares(const Napi::CallbackInfo& info) {
  const int type = ArgType(info, 0, "columnSquares");
  Napi::Uint8Array src = ArgU8(info, 1, "columnSquares", "bytes");
  const int64_t rows = ArgCount(info, 2, "columnSquares", "rows");
  const int64_t n = ArgCount(info, 3, "columnSquares", "n");
  CheckBlocks(info.Env(), "columnSquares", type, n);
  if (info.Length() < 5 || !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[4].As<Napi::Float64Array>().ElementLength() != static_cast<size_t>(n)) {
    Bad(info.Env(), "columnSquares: out must be a Float64Array of n = " + std::to_string(n) + " elements");
  }
  const size_t rb = af_row_bytes(type, n);
  if (src.ByteLength() < rb * static_cast<size_t>(rows)) {
    Bad(info.Env(), "columnSquares: " + std::to_string(rows) + " rows of " + std::to_string(n) + " elements of type " +
                        std::to_string(type) + " need " + std::to_string(rb * rows) + " bytes, got " + std::to_string(src.ByteLength()));
  }
  double* out = info[4].As<Napi::Float64Array>().Data();
  std::vector<float> row(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; r++) {
    af_dequantize_row(type, src.Data() + rb * r, row.data(), n);
    for (int64_t j = 0; j < n; j++) out[j] += static_cast<double>(row[j]) * row[j];
  }
  return info.Env().Undefined();
}

struct MatArgs {
  int type;
  Napi::Uint8Array w;
  int64_t rows, n;
  Napi::Float32Array x;
};

MatArgs ParseMat(const Napi::CallbackInfo& info, const char* fn, int64_t nb) {
  MatArgs a{ArgType(info, 0, fn), ArgU8(info, 1, fn, "w"), ArgCount(info, 2, fn, "rows"), ArgCount(info, 3, fn, "n"),
            ArgF32(info, 4, fn, "x")};
  CheckBlocks(info.Env(), fn, a.type, a.n);
  const size_t need = af_row_bytes(a.type, a.n) * (size_t)a.rows;
  if (a.w.ByteLength() < need) {
    Bad(info.Env(), std::string(fn) + ": w holds " + std::to_string(a.w.ByteLength()) + " bytes, " +
                        std::to_string(a.rows) + " rows of " + std::to_string(a.n) + " need " + std::to_string(need));
  }
  if ((int64_t)a.x.ElementLength() != nb * a.n) {
    Bad(info.Env(), std::string(fn) + ": x has " + std::to_string(a.x.ElementLength()) + " elements, expected " +
                        std::to_string(nb * a.n));
  }
  return a;
}

// Optional trailing row range [r0, r1) (defaults to all rows), as the engine's threads
// split a matrix.
void ArgRange(const Napi::CallbackInfo& info, size_t i, const char* fn, int64_t rows, int64_t* r0, int64_t* r1) {
  *r0 = 0;
  *r1 = rows;
  if (info.Length() <= i || info[i].IsUndefined()) return;
  if (!info[i].IsNumber() || info.Length() <= i + 1 || !info[i + 1].IsNumber()) {
    Bad(info.Env(), std::string(fn) + ": row range must be two numbers r0, r1");
  }
  *r0 = info[i].As<Napi::Number>().Int64Value();
  *r1 = info[i + 1].As<Napi::Number>().Int64Value();
  if (*r0 < 0 || *r1 > rows || *r0 >= *r1) {
    Bad(info.Env(), std::string(fn) + ": row range [" + std::to_string(*r0) + ", " + std::to_string(*r1) +
                        ") must be non-empty and within [0, " + std::to_string(rows) + ")");
  }
}

Napi::Value Matvec(const Napi::CallbackInfo& info) {
  MatArgs a = ParseMat(info, "matvec", 1);
  int64_t r0, r1;
  ArgRange(info, 5, "matvec", a.rows, &r0, &r1);
  std::vector<uint8_t> xq(af_act_bytes(a.type, a.n) + 64);
  af_quantize_act(a.type, a.x.Data(), xq.data(), a.n);
  Napi::Float32Array y = Napi::Float32Array::New(info.Env(), (size_t)(r1 - r0));
  af_matvec(a.type, a.w.Data(), af_row_bytes(a.type, a.n), xq.data(), y.Data(), a.n, r0, r1);
  return y;
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const int64_t nb = ArgCount(info, 5, "matmul", "nb");
  MatArgs a = ParseMat(info, "matmul", nb);
  int64_t r0, r1;
  ArgRange(info, 6, "matmul", a.rows, &r0, &r1);
  const size_t xs = af_act_bytes(a.type, a.n);
  std::vector<uint8_t> xq(xs * (size_t)nb + 64);
  for (int64_t b = 0; b < nb; b++) af_quantize_act(a.type, a.x.Data() + b * a.n, xq.data() + b * xs, a.n);
  Napi::Float32Array y = Napi::Float32Array::New(info.Env(), (size_t)(nb * a.rows));  // zero-filled
  af_matmul(a.type, a.w.Data(), af_row_bytes(a.type, a.n), xq.data(), xs, y.Data(), a.rows, a.n, nb, r0, r1);
  return y;
}

int ArgPackedType(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  const int type = ArgType(info, i, fn);
  if (!af_pack_supported(type)) {
    Bad(info.Env(), std::string(fn) + ": type " + std::to_string(type) + " has no packed layout (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  }
  return type;
}

// quantizeAct(type, x): x quantised as the activation of weight type `type` (Q8_1 / Q8_K bytes).
Napi::Value QuantizeAct(const Napi::CallbackInfo& info) {
  const int type = ArgType(info, 0, "quantizeAct");
  Napi::Float32Array x = ArgF32(info, 1, "quantizeAct", "x");
  const int64_t n = (int64_t)x.ElementLength();
  CheckBlocks(info.Env(), "quantizeAct", type, n);
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), af_act_bytes(type, n));
  af_quantize_act(type, x.Data(), out.Data(), n);
  return out;
}

// packRows(type, w, rows, n): a copy of w (rows of n elements) in the packed layout.
Napi::Value PackRows(const Napi::CallbackInfo& info) {
  const int type = ArgPackedType(info, 0, "packRows");
  MatArgs a{type, ArgU8(info, 1, "packRows", "w"), ArgCount(info, 2, "packRows", "rows"),
            ArgCount(info, 3, "packRows", "n"), Napi::Float32Array()};
  CheckBlocks(info.Env(), "packRows", type, a.n);
  const size_t rb = af_row_bytes(type, a.n);
  if (a.w.ByteLength() < rb * (size_t)a.rows) {
    Bad(info.Env(), "packRows: w holds " + std::to_string(a.w.ByteLength()) + " bytes, " + std::to_string(a.rows) +
                        " rows of " + std::to_string(a.n) + " need " + std::to_string(rb * (size_t)a.rows));
  }
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), rb * (size_t)a.rows);
  af_pack_rows(type, a.w.Data(), out.Data(), rb, a.rows);
  return out;
}

// unpackRow(type, packed, rows, n, r): row r in the plain layout.
Napi::Value UnpackRow(const Napi::CallbackInfo& info) {
  const int type = ArgPackedType(info, 0, "unpackRow");
  Napi::Uint8Array w = ArgU8(info, 1, "unpackRow", "w");
  const int64_t rows = ArgCount(info, 2, "unpackRow", "rows");
  const int64_t n = ArgCount(info, 3, "unpackRow", "n");
  CheckBlocks(info.Env(), "unpackRow", type, n);
  const size_t rb = af_row_bytes(type, n);
  if (w.ByteLength() < rb * (size_t)rows) Bad(info.Env(), "unpackRow: w is shorter than rows * row bytes");
  if (info.Length() <= 4 || !info[4].IsNumber()) Bad(info.Env(), "unpackRow: argument 'r' must be a number");
  const int64_t r = info[4].As<Napi::Number>().Int64Value();
  if (r < 0 || r >= rows) Bad(info.Env(), "unpackRow: row " + std::to_string(r) + " is outside [0, " + std::to_string(rows) + ")");
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), rb);
  af_unpack_row(type, w.Data(), rb, rows, r, out.Data());
  return out;
}

// matvecPacked / matmulPacked: matvec / matmul over a packRows() copy.
Napi::Value MatvecPacked(const Napi::CallbackInfo& info) {
  ArgPackedType(info, 0, "matvecPacked");
  MatArgs a = ParseMat(info, "matvecPacked", 1);
  int64_t r0, r1;
  ArgRange(info, 5, "matvecPacked", a.rows, &r0, &r1);
  std::vector<uint8_t> xq(af_act_bytes(a.type, a.n) + 64);
  af_quantize_act(a.type, a.x.Data(), xq.data(), a.n);
  Napi::Float32Array y = Napi::Float32Array::New(info.Env(), (size_t)(r1 - r0));
  af_matvec_packed(a.type, a.w.Data(), af_row_bytes(a.type, a.n), a.rows, xq.data(), y.Data(), a.n, r0, r1);
  return y;
}

Napi::Value MatmulPacked(const Napi::CallbackInfo& info) {
  ArgPackedType(info, 0, "matmulPacked");
  const int64_t nb = ArgCount(info, 5, "matmulPacked", "nb");
  MatArgs a = ParseMat(info, "matmulPacked", nb);
  int64_t r0, r1;
  ArgRange(info, 6, "matmulPacked", a.rows, &r0, &r1);
  const size_t xs = af_act_bytes(a.type, a.n);
  std::vector<uint8_t> xq(xs * (size_t)nb + 64);
  for (int64_t b = 0; b < nb; b++) af_quantize_act(a.type, a.x.Data() + b * a.n, xq.data() + b * xs, a.n);
  Napi::Float32Array y = Napi::Float32Array::New(info.Env(), (size_t)(nb * a.rows));
  af_matmul_packed(a.type, a.w.Data(), af_row_bytes(a.type, a.n), a.rows, xq.data(), xs, y.Data(), a.rows, a.n, nb,
                   r0, r1);
  return y;
}

// memoryBandwidth(bytes, threads, passes): bytes per second of the best of `passes` passes
// of `threads` threads each reading its share of a fresh `bytes` buffer (af_read_bytes).
// Blocks the calling thread for the measurement (a benchmark tool, not for the engine).
Napi::Value MemoryBandwidth(const Napi::CallbackInfo& info) {
  const int64_t bytes = ArgCount(info, 0, "memoryBandwidth", "bytes");
  const int64_t threads = ArgCount(info, 1, "memoryBandwidth", "threads");
  const int64_t passes = ArgCount(info, 2, "memoryBandwidth", "passes");
  if (threads > 256) Bad(info.Env(), "memoryBandwidth: threads must be at most 256");
  const size_t share = ((size_t)bytes / (size_t)threads) / 4096 * 4096;
  if (share == 0) Bad(info.Env(), "memoryBandwidth: bytes must be at least 4096 per thread");
  uint8_t* buf = (uint8_t*)std::aligned_alloc(4096, share * (size_t)threads);
  if (!buf) throw ToJsError(info.Env(), "NATIVE", "memoryBandwidth: cannot allocate " + std::to_string(bytes) + " bytes");
  for (size_t i = 0; i < share * (size_t)threads; i++) buf[i] = (uint8_t)(i * 131);
  double best = 0;
  std::atomic<uint64_t> sink{0};
  for (int64_t p = 0; p < passes; p++) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int64_t t = 1; t < threads; t++) {
      ts.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        sink.fetch_add(af_read_bytes(buf + (size_t)t * share, share));
      });
    }
    while (ready.load() < threads - 1) {
    }
    const auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    sink.fetch_add(af_read_bytes(buf, share));
    for (auto& th : ts) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, (double)share * (double)threads / s);
  }
  std::free(buf);
  return Napi::Number::New(info.Env(), best + (double)(sink.load() & 0) );
}

Napi::Float32Array Copy(Napi::Env env, const Napi::Float32Array& x) {
  Napi::Float32Array out = Napi::Float32Array::New(env, x.ElementLength());
  memcpy(out.Data(), x.Data(), x.ElementLength() * sizeof(float));
  return out;
}

void SameLength(Napi::Env env, const char* fn, const Napi::Float32Array& a, const Napi::Float32Array& b) {
  if (a.ElementLength() != b.ElementLength()) {
    Bad(env, std::string(fn) + ": arrays differ in length (" + std::to_string(a.ElementLength()) + " vs " +
                 std::to_string(b.ElementLength()) + ")");
  }
}

Napi::Value DotF32(const Napi::CallbackInfo& info) {
  Napi::Float32Array a = ArgF32(info, 0, "dotF32", "a"), b = ArgF32(info, 1, "dotF32", "b");
  SameLength(info.Env(), "dotF32", a, b);
  return Napi::Number::New(info.Env(), af_dot_f32(a.Data(), b.Data(), (int64_t)a.ElementLength()));
}

Napi::Value AxpyF32(const Napi::CallbackInfo& info) {
  const float s = ArgFloat(info, 0, "axpyF32", "a");
  Napi::Float32Array x = ArgF32(info, 1, "axpyF32", "x"), y = ArgF32(info, 2, "axpyF32", "y");
  SameLength(info.Env(), "axpyF32", x, y);
  Napi::Float32Array out = Copy(info.Env(), y);
  af_axpy_f32(s, x.Data(), out.Data(), (int64_t)x.ElementLength());
  return out;
}

Napi::Value ScaleF32(const Napi::CallbackInfo& info) {
  const float s = ArgFloat(info, 0, "scaleF32", "a");
  Napi::Float32Array out = Copy(info.Env(), ArgF32(info, 1, "scaleF32", "y"));
  af_scale_f32(s, out.Data(), (int64_t)out.ElementLength());
  return out;
}

Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  Napi::Float32Array x = ArgF32(info, 0, "rmsnorm", "x"), w = ArgF32(info, 1, "rmsnorm", "w");
  SameLength(info.Env(), "rmsnorm", x, w);
  const float eps = ArgFloat(info, 2, "rmsnorm", "eps");
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), x.ElementLength());
  af_rmsnorm_f32(x.Data(), w.Data(), out.Data(), (int64_t)x.ElementLength(), eps);
  return out;
}

Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  Napi::Float32Array g = ArgF32(info, 0, "siluMul", "gate"), u = ArgF32(info, 1, "siluMul", "up");
  SameLength(info.Env(), "siluMul", g, u);
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), g.ElementLength());
  af_silu_mul_f32(g.Data(), u.Data(), out.Data(), (int64_t)g.ElementLength());
  return out;
}

Napi::Value GeluMul(const Napi::CallbackInfo& info) {
  Napi::Float32Array g = ArgF32(info, 0, "geluMul", "gate"), u = ArgF32(info, 1, "geluMul", "up");
  SameLength(info.Env(), "geluMul", g, u);
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), g.ElementLength());
  af_gelu_mul_f32(g.Data(), u.Data(), out.Data(), (int64_t)g.ElementLength());
  return out;
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Float32Array out = Copy(info.Env(), ArgF32(info, 0, "softmax", "x"));
  af_softmax_f32(out.Data(), (int64_t)out.ElementLength());
  return out;
}

// moeRoute(logits, k, norm): the MoE router's choice for one token (model/moe_ffn.h).
Napi::Value MoeRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float32Array probs = Copy(env, ArgF32(info, 0, "moeRoute", "logits"));
  const int64_t n = static_cast<int64_t>(probs.ElementLength());
  const int64_t k = ArgCount(info, 1, "moeRoute", "k");
  if (n < 1 || n > kMaxExperts || k < 1 || k > n) {
    throw ToJsError(env, "BAD_ARGUMENT", "moeRoute: k = " + std::to_string(k) + " of " + std::to_string(n) +
                                             " logits, expected 1 <= k <= n <= " + std::to_string(kMaxExperts));
  }
  const bool norm = info.Length() > 2 && info[2].ToBoolean().Value();
  Napi::Int32Array experts = Napi::Int32Array::New(env, static_cast<size_t>(k));
  Napi::Float32Array weights = Napi::Float32Array::New(env, static_cast<size_t>(k));
  RouteTopK(probs.Data(), static_cast<int>(n), static_cast<int>(k), norm, experts.Data(), weights.Data());
  Napi::Object out = Napi::Object::New(env);
  out.Set("experts", experts);
  out.Set("weights", weights);
  out.Set("probs", probs);
  return out;
}

}  // namespace

void RegisterKernelBindings(Napi::Env env, Napi::Object exports) {
  char err[256] = "";
  if (af_isa_init(err, sizeof err) != 0) {
    throw ToJsError(env, "NATIVE", std::string("activeflow kernels: cannot select an instruction set: ") + err);
  }
  const struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } fns[] = {
      {"isaName", IsaName},       {"isaSet", IsaSet},         {"isaAvailable", IsaAvailable},
      {"rowBytes", RowBytes},     {"quantizeRow", QuantizeRow}, {"dequantizeRow", DequantizeRow},
      {"columnSquares", ColumnSquares},
      {"matvec", Matvec},         {"matmul", Matmul},         {"dotF32", DotF32},
      {"axpyF32", AxpyF32},       {"scaleF32", ScaleF32},     {"rmsnorm", Rmsnorm},
      {"siluMul", SiluMul},       {"geluMul", GeluMul},       {"softmax", Softmax},       {"packRows", PackRows},
      {"unpackRow", UnpackRow},   {"matvecPacked", MatvecPacked}, {"matmulPacked", MatmulPacked},
      {"memoryBandwidth", MemoryBandwidth}, {"quantizeAct", QuantizeAct}, {"moeRoute", MoeRoute},
  };
  for (const auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace activeflow
