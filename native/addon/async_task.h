// A promise-returning unit of native work: `fn` runs on a libuv worker thread, so the event
// loop keeps turning; C++ errors with a code (model, I/O) reject with that code.
#pragma once
#include <napi.h>

#include <functional>
#include <new>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "io/io_error.h"
#include "model/model.h"

namespace activeflow {

class AsyncTask : public Napi::AsyncWorker {
 public:
  using Fn = std::function<void()>;
  using Resolve = std::function<Napi::Value(Napi::Env)>;
  AsyncTask(Napi::Env env, Fn fn, Resolve resolve)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fn_(std::move(fn)),
        resolve_(std::move(resolve)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  // JS objects whose memory the work touches; held until the task ends.
  void Keep(Napi::Value v) { keep_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

  void Execute() override {
    try {
      fn_();
    } catch (const ModelError& e) {
      code_ = e.code;
      message_ = e.what();
    } catch (const IoError& e) {
      code_ = e.code;
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = "NATIVE";
      message_ = "out of memory";
    } catch (const std::exception& e) {
      code_ = "NATIVE";
      message_ = e.what();
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (!code_.empty()) {
      deferred_.Reject(ToJsError(env, code_, message_).Value());
      return;
    }
    try {
      deferred_.Resolve(resolve_ ? resolve_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Fn fn_;
  Resolve resolve_;
  std::vector<Napi::ObjectReference> keep_;
  std::string code_, message_;
};

}  // namespace activeflow
