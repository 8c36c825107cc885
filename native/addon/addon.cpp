// Node-API entry point: each binding group registers its functions on the exports object.
#include <napi.h>

#include "addon/bindings.h"

namespace activeflow {

void RegisterErrorClass(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) BadArgument(env, "setErrorClass: argument 'cls' must be a class");
    // The environment owns (and frees) the reference.
    env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>())));
    return env.Undefined();
  }));
}

}  // namespace activeflow

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  activeflow::RegisterErrorClass(env, exports);
  activeflow::RegisterKernelBindings(env, exports);
  activeflow::RegisterModelBindings(env, exports);
  activeflow::RegisterIoBindings(env, exports);
  activeflow::RegisterColBindings(env, exports);
  activeflow::RegisterColxBindings(env, exports);
  activeflow::RegisterThreadBindings(env, exports);
  return exports;
}

NODE_API_MODULE(activeflow, Init)
