// threadScaling(maxThreads, bytes, seconds): how fast the engine's own thread pool runs the
// dense kernels at 1..maxThreads threads, for choosing the default thread count
// (src/engine/threads.ts). Runs off the event loop; resolves to
// [{ threads, decodeBytesPerSecond, prefillMacsPerSecond }].
#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "activeflow/kernels.h"
#include "addon/async_task.h"
#include "addon/bindings.h"
#include "model/threadpool.h"

namespace activeflow {

namespace {

struct Scaling {
  int threads;
  double decode_bytes_per_second;
  double prefill_macs_per_second;
};

// Rows of 4096 Q4_0 weights (a 7B layer's width), packed as the dense engine packs them.
constexpr int64_t kN = 4096;
constexpr int kPrefillBatch = 16;
constexpr int64_t kRowAlign = 16;

double TimeLoop(double seconds, const std::function<void()>& fn) {
  fn();  // warm: pages touched, pool threads started
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  int iters = 0;
  double best = 1e30;
  while (std::chrono::duration<double>(clock::now() - t0).count() < seconds || iters < 2) {
    const auto s = clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(clock::now() - s).count());
    iters++;
  }
  return best;
}

std::vector<Scaling> Measure(int max_threads, size_t bytes, double seconds) {
  const size_t rb = af_row_bytes(AF_Q4_0, kN);
  const int64_t rows = std::max<int64_t>(kRowAlign, (int64_t)(bytes / rb) / kRowAlign * kRowAlign);
  std::vector<uint8_t> plain((size_t)rows * rb), w((size_t)rows * rb);
  // Codes anything; every block scale 1/64 so sums stay finite.
  for (size_t i = 0; i < plain.size(); i++) plain[i] = (uint8_t)(i * 2654435761u >> 13);
  for (size_t b = 0; b < plain.size(); b += 18) plain[b] = 0x00, plain[b + 1] = 0x24;
  af_pack_rows(AF_Q4_0, plain.data(), w.data(), rb, rows);
  plain = std::vector<uint8_t>();
  const size_t act = af_act_bytes(AF_Q4_0, kN);
  std::vector<float> x((size_t)kPrefillBatch * kN);
  for (size_t i = 0; i < x.size(); i++) x[i] = (float)((int)(i % 13) - 6) / 6.0f;
  std::vector<uint8_t> xq(act * kPrefillBatch);
  for (int b = 0; b < kPrefillBatch; b++) af_quantize_act(AF_Q4_0, x.data() + b * kN, xq.data() + b * act, kN);
  const int64_t prefill_rows = std::min<int64_t>(rows, 2048);
  std::vector<float> y((size_t)kPrefillBatch * rows);
  std::vector<Scaling> out;
  for (int t = 1; t <= max_threads; t++) {
    ThreadPool pool(t);
    const double dec = TimeLoop(seconds / 2 / max_threads, [&] {
      const int64_t unit = std::max<int64_t>(kRowAlign, rows / (8 * t) / kRowAlign * kRowAlign);
      pool.for_units((rows + unit - 1) / unit, [&](int64_t u, int) {
        const int64_t r0 = u * unit, r1 = std::min(rows, r0 + unit);
        af_matvec_packed(AF_Q4_0, w.data(), rb, rows, xq.data(), y.data() + r0, kN, r0, r1);
      });
    });
    const double pre = TimeLoop(seconds / 2 / max_threads, [&] {
      const int64_t unit = std::max<int64_t>(kRowAlign, prefill_rows / (8 * t) / kRowAlign * kRowAlign);
      pool.for_units((prefill_rows + unit - 1) / unit, [&](int64_t u, int) {
        const int64_t r0 = u * unit, r1 = std::min(prefill_rows, r0 + unit);
        af_matmul_packed(AF_Q4_0, w.data(), rb, prefill_rows, xq.data(), act, y.data(), prefill_rows, kN,
                         kPrefillBatch, r0, r1);
      });
    });
    out.push_back({t, (double)w.size() / dec, (double)prefill_rows * kN * kPrefillBatch / pre});
  }
  return out;
}

Napi::Value ThreadScaling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw ToJsError(env, "BAD_ARGUMENT", "threadScaling(maxThreads, bytes, seconds): three numbers expected");
  }
  const int max_threads = info[0].As<Napi::Number>().Int32Value();
  const double bytes = info[1].As<Napi::Number>().DoubleValue();
  const double seconds = info[2].As<Napi::Number>().DoubleValue();
  if (max_threads < 1 || max_threads > 256) {
    throw ToJsError(env, "BAD_ARGUMENT", "threadScaling: maxThreads must be 1..256, got " + std::to_string(max_threads));
  }
  if (!(bytes >= 1 << 20 && bytes <= (double)(1ULL << 34)) || !(seconds > 0 && seconds <= 60)) {
    throw ToJsError(env, "BAD_ARGUMENT", "threadScaling: bytes must be 1 MiB..16 GiB and seconds in (0, 60]");
  }
  auto result = std::make_shared<std::vector<Scaling>>();
  auto* task = new AsyncTask(
      env, [=] { *result = Measure(max_threads, (size_t)bytes, seconds); },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(e, result->size());
        for (size_t i = 0; i < result->size(); i++) {
          Napi::Object o = Napi::Object::New(e);
          o.Set("threads", (*result)[i].threads);
          o.Set("decodeBytesPerSecond", (*result)[i].decode_bytes_per_second);
          o.Set("prefillMacsPerSecond", (*result)[i].prefill_macs_per_second);
          arr.Set((uint32_t)i, o);
        }
        return arr;
      });
  Napi::Promise p = task->Promise();
  task->Queue();
  return p;
}

}  // namespace

void RegisterThreadBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("threadScaling", Napi::Function::New(env, ThreadScaling, "threadScaling"));
}

}  // namespace activeflow
