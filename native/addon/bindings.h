// Binding groups of the addon. Each lives in its own file and registers its functions.
#pragma once
#include <napi.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "io/read_cost.h"

namespace activeflow {

// Kernel entry points for tests and tools (kernels_binding.cpp).
void RegisterKernelBindings(Napi::Env env, Napi::Object exports);
// Model loading and forward passes (model_binding.cpp).
void RegisterModelBindings(Napi::Env env, Napi::Object exports);
// Flash file reads, coalescing and CRC-32C (io_binding.cpp).
void RegisterIoBindings(Napi::Env env, Napi::Object exports);
// Column gather-axpy over transposed flash columns (col_binding.cpp).
void RegisterColBindings(Napi::Env env, Napi::Object exports);
// Split columns: their gather-axpy and the converter's split (colx_binding.cpp).
void RegisterColxBindings(Napi::Env env, Napi::Object exports);

// A read-cost curve from { bytes: number[], seconds: number[] }; undefined or null: none
// (io_binding.cpp). Throws a BAD_ARGUMENT JS error naming what is wrong.
ReadCost ParseReadCost(Napi::Env env, const Napi::Value& v);
// The thread-count probe (threads_binding.cpp).
void RegisterThreadBindings(Napi::Env env, Napi::Object exports);

// An error that crosses into JS as an Error with a stable `code` property.
struct NativeError : std::runtime_error {
  std::string code;
  NativeError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

// The JS class every native error is made with: setErrorClass(cls), called once by the module
// that loads the addon (src/backends/native/binding.ts passes ActiveflowError), stores it as
// the environment's instance data; `new cls(code, message)` then builds each error here, so
// errors arrive typed without a wrapper around every call. (better-sqlite3 setErrorConstructor.)
void RegisterErrorClass(Napi::Env env, Napi::Object exports);

// A JS error with a stable `code` (synchronous bindings throw it, async work rejects with it):
// an instance of the registered class, else a plain Error carrying `code`.
inline Napi::Error ToJsError(Napi::Env env, const std::string& code, const std::string& msg) {
  if (auto* cls = env.GetInstanceData<Napi::FunctionReference>(); cls != nullptr && !cls->IsEmpty()) {
    return Napi::Error(env, cls->New({Napi::String::New(env, code), Napi::String::New(env, msg)}));
  }
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

// A BAD_ARGUMENT JS error with msg.
[[noreturn]] inline void BadArgument(Napi::Env env, const std::string& msg) { throw ToJsError(env, "BAD_ARGUMENT", msg); }

// Argument i of `fn` as an integer in [min, 2^40]; a BAD_ARGUMENT error naming `name` otherwise.
inline int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t min) {
  if (info.Length() <= i || !info[i].IsNumber()) BadArgument(info.Env(), std::string(fn) + ": argument '" + name + "' must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= (double)min && v <= (double)(1LL << 40)) || v != (double)(int64_t)v) {
    BadArgument(info.Env(), std::string(fn) + ": argument '" + name + "' must be an integer >= " + std::to_string(min) +
                                ", got " + std::to_string(v));
  }
  return (int64_t)v;
}

}  // namespace activeflow
