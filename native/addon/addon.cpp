// Node-API entry point: each binding group registers its functions on the exports object.
#include <napi.h>

#include "addon/bindings.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  activeflow::RegisterKernelBindings(env, exports);
  activeflow::RegisterModelBindings(env, exports);
  activeflow::RegisterIoBindings(env, exports);
  activeflow::RegisterColBindings(env, exports);
  activeflow::RegisterColxBindings(env, exports);
  activeflow::RegisterThreadBindings(env, exports);
  return exports;
}

NODE_API_MODULE(activeflow, Init)
