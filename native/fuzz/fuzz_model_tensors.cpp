// libFuzzer target: the addon's checks of a model's tensor table against its file (dense
// load: names, shapes, types, offsets, then packing the weights). The table is a llama's, each
// tensor kept, dropped or given fuzzed dims, type and offset; the file is fuzz bytes. The load
// either throws ModelError or succeeds; nothing else (crash, overflow, other exception).
#include <fuzzer/FuzzedDataProvider.h>
#include <memory>
#include <string>
#include <vector>
#include "activeflow/kernels.h"
#include "fuzz/fuzz_common.h"
#include "model/model.h"

using namespace activeflow;

namespace {

const int kTypes[9] = {AF_F32, AF_F16, AF_Q4_0, AF_Q4_1, AF_Q8_0, AF_Q4_K, AF_Q5_K, AF_Q6_K, AF_BF16};

// Mostly the dims the config asks for, sometimes one changed, sometimes anything.
std::vector<int64_t> Dims(FuzzedDataProvider& in, std::vector<int64_t> want) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: {
      std::vector<int64_t> any(in.ConsumeIntegralInRange<size_t>(0, 4));
      for (auto& d : any) d = in.ConsumeIntegral<int64_t>();
      return any;
    }
    case 1:
      want[in.ConsumeIntegralInRange<size_t>(0, want.size() - 1)] = in.ConsumeIntegralInRange<int64_t>(-2, 1 << 20);
      return want;
    case 2:
      want.push_back(in.ConsumeIntegralInRange<int64_t>(0, 3));
      return want;
    default:
      return want;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  ModelConfig cfg;
  cfg.n_layer = in.ConsumeIntegralInRange<int>(1, 2);
  cfg.n_head_kv = in.ConsumeIntegralInRange<int>(1, 2);
  cfg.n_head = cfg.n_head_kv * in.ConsumeIntegralInRange<int>(1, 2);
  cfg.head_dim = 32;
  cfg.n_rot = 32;
  cfg.n_embd = 32 * in.ConsumeIntegralInRange<int>(1, 2);
  cfg.n_ff = 32 * in.ConsumeIntegralInRange<int>(1, 3);
  cfg.n_vocab = in.ConsumeIntegralInRange<int>(1, 40);
  cfg.n_ctx = 8;
  cfg.n_batch = 4;
  const int64_t E = cfg.n_embd, F = cfg.n_ff, V = cfg.n_vocab;
  const int64_t Q = cfg.n_head * cfg.head_dim, KV = cfg.n_head_kv * cfg.head_dim;

  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"token_embd.weight", {E, V}}, {"output_norm.weight", {E}}, {"output.weight", {E, V}}};
  for (int l = 0; l < cfg.n_layer; l++) {
    const std::string p = "blk." + std::to_string(l) + ".";
    want.insert(want.end(), {{p + "attn_norm.weight", {E}}, {p + "attn_q.weight", {E, Q}}, {p + "attn_k.weight", {E, KV}},
                             {p + "attn_v.weight", {E, KV}}, {p + "attn_output.weight", {Q, E}}, {p + "ffn_norm.weight", {E}},
                             {p + "ffn_gate.weight", {E, F}}, {p + "ffn_up.weight", {E, F}}, {p + "ffn_down.weight", {F, E}}});
  }
  std::vector<TensorSpec> tensors;
  for (auto& [name, dims] : want) {
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) continue;  // dropped
    TensorSpec t;
    t.name = name;
    t.dims = Dims(in, dims);
    t.type = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegral<int>()
             : dims.size() == 1                         ? AF_F32
                                                        : in.PickValueInArray(kTypes);
    // Mostly near the start (tensors may overlap), so a short file can hold every tensor and
    // the load gets past the bounds checks into packing.
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: t.offset = in.ConsumeIntegral<uint64_t>(); break;
      case 1: t.offset = in.ConsumeIntegralInRange<uint64_t>(0, 1 << 16); break;
      default: t.offset = in.ConsumeIntegralInRange<uint64_t>(0, 255); break;
    }
    tensors.push_back(std::move(t));
  }
  const std::vector<uint8_t> bytes = in.ConsumeRemainingBytes<uint8_t>();
  fuzz::MemFile mem(bytes.data(), bytes.size());
  try {
    Model model(mem.path(), cfg, tensors, /*threads=*/1);
  } catch (const ModelError&) {
    return 0;
  }
  return 0;
}
