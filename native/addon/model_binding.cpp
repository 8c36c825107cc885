// Model bindings: loading and evaluation run on libuv worker threads (AsyncWorker), so the
// event loop keeps turning while a model loads or a token is computed.
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

#include "activeflow/col_kernels.h"
#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "addon/async_task.h"
#include "addon/bindings.h"
#include "io/io_error.h"
#include "model/model.h"

namespace activeflow {

namespace {



int GetInt(const Napi::Object& o, const char* key, int fallback, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throw ToJsError(o.Env(), "BAD_ARGUMENT", std::string("model config is missing ") + key);
    return fallback;
  }
  if (!v.IsNumber()) throw ToJsError(o.Env(), "BAD_ARGUMENT", std::string("model config field ") + key + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

float GetFloat(const Napi::Object& o, const char* key, float fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw ToJsError(o.Env(), "BAD_ARGUMENT", std::string("model config field ") + key + " must be a number");
  return v.As<Napi::Number>().FloatValue();
}

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod("eval", &NativeModel::Eval),
                           InstanceMethod("abort", &NativeModel::Abort),
                           InstanceMethod("setThreads", &NativeModel::SetThreads),
                           InstanceMethod("dispose", &NativeModel::Dispose),
                           InstanceMethod("info", &NativeModel::Info),
                           InstanceMethod("setThresholds", &NativeModel::SetThresholds),
                           InstanceMethod("setColumnNorms", &NativeModel::SetColumnNorms),
                           InstanceMethod("setCapture", &NativeModel::SetCapture),
                           InstanceMethod("histograms", &NativeModel::Histograms),
                           InstanceMethod("setActivationCapture", &NativeModel::SetActivationCapture),
                           InstanceMethod("activationCounts", &NativeModel::ActivationCounts),
                           InstanceMethod("takeActivationTrace", &NativeModel::TakeActivationTrace),
                           InstanceMethod("siteCounts", &NativeModel::SiteCounts),
                           InstanceMethod("flashStats", &NativeModel::FlashStats),
                           InstanceMethod("setCacheBytes", &NativeModel::SetCacheBytes),
                           InstanceMethod("resetCacheCounts", &NativeModel::ResetCacheCounts),
                           InstanceMethod("expertStats", &NativeModel::ExpertStats),
                           InstanceMethod("setExpertPoolBytes", &NativeModel::SetExpertPoolBytes),
                       });
  }

  NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {}
  ~NativeModel() override { Release(); }

  void Attach(Napi::Env env, std::shared_ptr<Model> m) {
    model_ = std::move(m);
    external_ = static_cast<int64_t>(model_->kv_bytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, external_);
  }

 private:
  Model& Get(Napi::Env env) {
    if (!model_) throw ToJsError(env, "DISPOSED", "model has been disposed");
    return *model_;
  }

  void Release() {
    model_.reset();
  }

  // eval(tokens: Int32Array, pos: number, logits: Float32Array, allLogits: boolean): Promise<void>
  Napi::Value Eval(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    if (busy_->load()) throw ToJsError(env, "BAD_ARGUMENT", "an evaluation is already running on this model");
    if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsTypedArray()) {
      throw ToJsError(env, "BAD_ARGUMENT", "eval(tokens: Int32Array, pos: number, logits: Float32Array, allLogits: boolean)");
    }
    auto tokens = info[0].As<Napi::TypedArray>();
    auto logits = info[2].As<Napi::TypedArray>();
    if (tokens.TypedArrayType() != napi_int32_array || logits.TypedArrayType() != napi_float32_array) {
      throw ToJsError(env, "BAD_ARGUMENT", "eval expects an Int32Array of tokens and a Float32Array for logits");
    }
    const int n = static_cast<int>(tokens.ElementLength());
    const int pos = info[1].As<Napi::Number>().Int32Value();
    const bool all = info[3].ToBoolean().Value();
    const size_t need = static_cast<size_t>(all ? n : 1) * m.config().n_vocab;
    if (logits.ElementLength() < need) {
      throw ToJsError(env, "BAD_ARGUMENT", "logits buffer holds " + std::to_string(logits.ElementLength()) +
                                               " floats, needs " + std::to_string(need));
    }
    const int32_t* tp = tokens.As<Napi::Int32Array>().Data();
    float* lp = logits.As<Napi::Float32Array>().Data();
    std::shared_ptr<Model> keep = model_;
    auto busy = busy_;
    auto abort = abort_;
    abort->store(false);
    busy->store(true);
    auto* task = new AsyncTask(
        env,
        [keep, tp, n, pos, lp, all, busy, abort] {
          struct Done {
            std::shared_ptr<std::atomic<bool>> b;
            ~Done() { b->store(false); }
          } done{busy};
          keep->eval(tp, n, pos, lp, all, abort.get());
        },
        nullptr);
    task->Keep(info[0]);
    task->Keep(info[2]);
    Napi::Promise p = task->Promise();
    task->Queue();
    return p;
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    abort_->store(true);
    return info.Env().Undefined();
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    if (busy_->load()) throw ToJsError(env, "BAD_ARGUMENT", "cannot change threads during an evaluation");
    if (info.Length() < 1 || !info[0].IsNumber()) throw ToJsError(env, "BAD_ARGUMENT", "setThreads(n: number)");
    m.set_threads(info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (model_) {
      abort_->store(true);
      Napi::MemoryManagement::AdjustExternalMemory(env, -external_);
      external_ = 0;
      Release();  // a running evaluation keeps its own reference until it ends
    }
    return env.Undefined();
  }

  void NotBusy(Napi::Env env, const char* what) {
    if (busy_->load()) throw ToJsError(env, "BAD_ARGUMENT", std::string("cannot ") + what + " during an evaluation");
  }

  // The first argument of a setter that takes a Float32Array of `need` values or null: the
  // array, or nothing for null / undefined. `what` names the values in the errors.
  static std::optional<Napi::Float32Array> OptionalF32(const Napi::CallbackInfo& info, const char* fn, const char* what,
                                                       size_t need, const char* expected) {
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) return std::nullopt;
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw ToJsError(info.Env(), "BAD_ARGUMENT", std::string(fn) + " expects a Float32Array or null");
    }
    auto t = info[0].As<Napi::Float32Array>();
    if (t.ElementLength() != need) {
      throw ToJsError(info.Env(), "BAD_ARGUMENT", std::string(what) + " hold " + std::to_string(t.ElementLength()) +
                                                      " values, expected " + expected + " = " + std::to_string(need));
    }
    return t;
  }

  // setThresholds(t: Float32Array [nLayer * 4] | null)
  Napi::Value SetThresholds(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "change thresholds");
    const auto t = OptionalF32(info, "setThresholds", "thresholds", static_cast<size_t>(m.config().n_layer) * kSites, "n_layer * 4");
    try {
      m.set_thresholds(t ? t->Data() : nullptr);
    } catch (const ModelError& e) {
      throw ToJsError(env, e.code, e.what());
    }
    return env.Undefined();
  }

  // setColumnNorms(norms: Float32Array [nLayer][4][site width] | null): weight-aware selection
  // (Model::set_column_norms); null restores magnitude selection.
  Napi::Value SetColumnNorms(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "change column norms");
    const auto t = OptionalF32(info, "setColumnNorms", "column norms", m.column_norm_count(), "n_layer x the sites' input widths");
    if (t) {
      for (size_t i = 0; i < t->ElementLength(); i++) {
        const float v = (*t)[i];
        if (!(v >= 0.0f) || !std::isfinite(v)) {
          throw ToJsError(env, "BAD_ARGUMENT", "column norm " + std::to_string(i) + " is " + std::to_string(v) + "; norms must be finite and >= 0");
        }
      }
    }
    m.set_column_norms(t ? t->Data() : nullptr);
    return env.Undefined();
  }

  Napi::Value SetCapture(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "change capture");
    const bool on = info.Length() > 0 && info[0].ToBoolean().Value();
    m.activation_stats().set_histograms(on);
    if (info.Length() > 1 && info[1].ToBoolean().Value()) m.activation_stats().clear_histograms();
    return env.Undefined();
  }

  // setActivationCapture(counts: boolean, trace: boolean, clear?: boolean): per-channel active
  // counts and the active-set trace of every site input; clear zeroes the counts and drops
  // the trace gathered so far.
  Napi::Value SetActivationCapture(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "change activation capture");
    if (info.Length() < 2 || !info[0].IsBoolean() || !info[1].IsBoolean()) {
      throw ToJsError(env, "BAD_ARGUMENT", "setActivationCapture(counts: boolean, trace: boolean, clear?: boolean)");
    }
    ActivationStats& st = m.activation_stats();
    st.set_counts(info[0].As<Napi::Boolean>().Value());
    st.set_trace(info[1].As<Napi::Boolean>().Value());
    if (info.Length() > 2 && info[2].ToBoolean().Value()) {
      st.clear_counts();
      std::vector<int32_t> passes;
      st.take_trace(&passes);
    }
    return env.Undefined();
  }

  static Napi::Array Widths(Napi::Env env, const ActivationStats& st) {
    Napi::Array w = Napi::Array::New(env, kSites);
    for (int s = 0; s < kSites; s++) w.Set(s, Napi::Number::New(env, static_cast<double>(st.width(s))));
    return w;
  }

  // activationCounts(reset?: boolean): { counts: Float64Array [nLayer][site][widths[site]],
  // rows, widths: number[4] }: rows in which each input channel was active.
  Napi::Value ActivationCounts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "read activation counts");
    ActivationStats& st = m.activation_stats();
    const auto& c = st.counts();
    Napi::Float64Array out = Napi::Float64Array::New(env, c.size());
    for (size_t i = 0; i < c.size(); i++) out[i] = static_cast<double>(c[i]);
    Napi::Object o = Napi::Object::New(env);
    o.Set("counts", out);
    o.Set("rows", Napi::Number::New(env, static_cast<double>(st.count_rows())));
    o.Set("widths", Widths(env, st));
    if (info.Length() > 0 && info[0].ToBoolean().Value()) st.clear_counts();
    return o;
  }

  // takeActivationTrace(): { bits: Uint8Array [rows][rowBytes], rows, rowBytes, passes:
  // Int32Array (rows of each evaluation pass), nLayer, widths }. Rows hold [nLayer][site]
  // bitsets of ceil(widths[site] / 8) bytes, LSB first. The trace is moved out (emptied).
  Napi::Value TakeActivationTrace(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "take the activation trace");
    ActivationStats& st = m.activation_stats();
    std::vector<int32_t> passes;
    const std::vector<uint8_t> bits = st.take_trace(&passes);
    const size_t rows = st.trace_row_bytes() ? bits.size() / st.trace_row_bytes() : 0;
    Napi::Uint8Array out = Napi::Uint8Array::New(env, bits.size());
    if (!bits.empty()) std::memcpy(out.Data(), bits.data(), bits.size());
    Napi::Int32Array p = Napi::Int32Array::New(env, passes.size());
    for (size_t i = 0; i < passes.size(); i++) p[i] = passes[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("bits", out);
    o.Set("rows", Napi::Number::New(env, static_cast<double>(rows)));
    o.Set("rowBytes", Napi::Number::New(env, static_cast<double>(st.trace_row_bytes())));
    o.Set("passes", p);
    o.Set("nLayer", Napi::Number::New(env, st.n_layer()));
    o.Set("widths", Widths(env, st));
    return o;
  }

  // histograms(): Float64Array [nLayer][4][bins] of |x| counts, plus the bin layout.
  Napi::Value Histograms(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    const auto& h = m.activation_stats().histograms();
    Napi::Float64Array out = Napi::Float64Array::New(env, h.size());
    for (size_t i = 0; i < h.size(); i++) out[i] = static_cast<double>(h[i]);
    Napi::Object o = Napi::Object::New(env);
    o.Set("counts", out);
    o.Set("bins", Napi::Number::New(env, kHistBins));
    o.Set("perOctave", Napi::Number::New(env, kHistPerOctave));
    o.Set("minLog2", Napi::Number::New(env, kHistMinLog2));
    return o;
  }

  // siteCounts(reset?: boolean): { kept: number[4], seen: number[4] }
  Napi::Value SiteCounts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    Napi::Array kept = Napi::Array::New(env, kSites), seen = Napi::Array::New(env, kSites);
    for (int s = 0; s < kSites; s++) {
      kept.Set(s, Napi::Number::New(env, static_cast<double>(m.site_kept()[s])));
      seen.Set(s, Napi::Number::New(env, static_cast<double>(m.site_seen()[s])));
    }
    if (info.Length() > 0 && info[0].ToBoolean().Value()) {
      NotBusy(env, "reset counts");
      m.reset_site_counts();
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("kept", kept);
    o.Set("seen", seen);
    return o;
  }

  // flashStats(reset?: boolean): I/O and cache counters of a flash-layout model.
  Napi::Value FlashStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
    num("weightResidentBytes", static_cast<double>(m.weight_resident_bytes()));
    num("scratchBytes", static_cast<double>(m.scratch_bytes()));
    num("kvBytes", static_cast<double>(m.kv_bytes()));
    ColumnStore* st = m.store();
    if (st) {
      const ColumnStats& s = st->stats();
#define AF_COUNTER_SET(field, js, type, doc) num(js, static_cast<double>(s.field));
      AF_FLASH_COUNTERS(AF_COUNTER_SET)
#undef AF_COUNTER_SET
#define AF_SITE_COUNTER_SET(field, js, doc)                                              \
  {                                                                                      \
    Napi::Array a = Napi::Array::New(env, kSites);                                       \
    for (int k = 0; k < kSites; k++) a.Set(k, Napi::Number::New(env, static_cast<double>(s.field[k]))); \
    o.Set(js, a);                                                                        \
  }
      AF_FLASH_SITE_COUNTERS(AF_SITE_COUNTER_SET)
#undef AF_SITE_COUNTER_SET
      num("headBytesRead", static_cast<double>(m.head_bytes_read()));
      num("cacheBytes", static_cast<double>(st->cache_bytes()));
      num("stagingBytes", static_cast<double>(st->staging_bytes()));
      num("preloadBufferBytes", static_cast<double>(st->preload_bytes()));
      // Records the hot cache holds room for, per extent (file order): how the budget was split.
      const std::vector<int32_t> caps = st->cache_slots();
      Napi::Int32Array slots = Napi::Int32Array::New(env, caps.size());
      for (size_t i = 0; i < caps.size(); i++) slots[i] = caps[i];
      o.Set("cacheSlots", slots);
      // [site][distance 0..4] true/false positives and false negatives of the prediction
      // (distance 0: one sub-block ahead).
      const PredictCounts& pc = m.predict_counts();
      Napi::Array pred = Napi::Array::New(env, kSites);
      for (int site = 0; site < kSites; site++) {
        Napi::Array byd = Napi::Array::New(env, kMaxPredictDistance + 1);
        for (int d = 0; d <= kMaxPredictDistance; d++) {
          Napi::Object c = Napi::Object::New(env);
          c.Set("tp", Napi::Number::New(env, static_cast<double>(pc.tp[site][d])));
          c.Set("fp", Napi::Number::New(env, static_cast<double>(pc.fp[site][d])));
          c.Set("fn", Napi::Number::New(env, static_cast<double>(pc.fn[site][d])));
          byd.Set(d, c);
        }
        pred.Set(site, byd);
      }
      o.Set("prediction", pred);
      // Per layer, flat [n_layer][site][distance 0..4][tp, fp, fn] (distance 0 unused).
      const std::vector<uint64_t>& pl = m.predict_layer_counts();
      Napi::Float64Array by_layer = Napi::Float64Array::New(env, pl.size());
      for (size_t i = 0; i < pl.size(); i++) by_layer[i] = static_cast<double>(pl[i]);
      o.Set("predictionByLayer", by_layer);
      if (info.Length() > 0 && info[0].ToBoolean().Value()) {
        NotBusy(env, "reset stats");
        st->reset_stats();
        m.reset_predict_counts();
      }
    }
    return o;
  }

  // setCacheBytes(bytes): re-plans the hot cache between tokens; memory goes back to the OS.
  Napi::Value SetCacheBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "resize the cache");
    if (!m.store()) throw ToJsError(env, "BAD_ARGUMENT", "setCacheBytes needs a flash-layout model");
    if (info.Length() < 1 || !info[0].IsNumber()) throw ToJsError(env, "BAD_ARGUMENT", "setCacheBytes(bytes: number)");
    m.store()->set_cache_bytes(static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()));
    return env.Undefined();
  }

  Napi::Value ResetCacheCounts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "reset counts");
    if (m.store()) m.store()->reset_counts();
    if (m.experts()) m.experts()->reset_counts();
    return env.Undefined();
  }

  // expertStats(reset?: boolean): the expert store's counters (model/expert_store.h), or
  // undefined for a model without experts on flash.
  Napi::Value ExpertStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    ExpertStore* x = m.experts();
    if (!x) return env.Undefined();
    const activeflow::ExpertStats& s = x->stats();
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
    num("lookups", static_cast<double>(s.lookups));
    num("hits", static_cast<double>(s.hits));
    num("prefetchHits", static_cast<double>(s.prefetch_hits));
    num("reads", static_cast<double>(s.reads));
    num("prefetches", static_cast<double>(s.prefetches));
    num("bytesRead", static_cast<double>(s.bytes_read));
    num("predTp", static_cast<double>(s.pred_tp));
    num("predFp", static_cast<double>(s.pred_fp));
    num("predFn", static_cast<double>(s.pred_fn));
    num("waitSeconds", s.wait_s);
    num("computeSeconds", s.compute_s);
    num("slots", x->slots());
    num("slotBytes", static_cast<double>(x->slot_bytes()));
    num("cachedExperts", x->cached_experts());
    if (info.Length() > 0 && info[0].ToBoolean().Value()) {
      NotBusy(env, "reset stats");
      x->reset_stats();
    }
    return o;
  }

  // setExpertPoolBytes(bytes): re-plans the expert slots between tokens.
  Napi::Value SetExpertPoolBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    NotBusy(env, "resize the expert pool");
    if (!m.experts()) throw ToJsError(env, "BAD_ARGUMENT", "setExpertPoolBytes needs a mixture-of-experts model in the flash layout");
    if (info.Length() < 1 || !info[0].IsNumber()) throw ToJsError(env, "BAD_ARGUMENT", "setExpertPoolBytes(bytes: number)");
    m.experts()->set_pool_bytes(static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()));
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = Get(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("fileBytes", Napi::Number::New(env, static_cast<double>(m.file_bytes())));
    o.Set("kvBytes", Napi::Number::New(env, static_cast<double>(m.kv_bytes())));
    o.Set("threads", Napi::Number::New(env, m.threads()));
    o.Set("isa", Napi::String::New(env, af_isa_name()));
    return o;
  }

  std::shared_ptr<Model> model_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> abort_ = std::make_shared<std::atomic<bool>>(false);
  int64_t external_ = 0;
};

Napi::FunctionReference* g_model_ctor = nullptr;

double Num(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw ToJsError(o.Env(), "BAD_ARGUMENT", std::string("flash spec field ") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// flash.experts: { perLayer, poolBytes, pregate, spans: [{ offset, bytes, outOffset, recIn,
// recOut, nIn, nFf, parts: [gate, up, down] as { offset, bytes, nOut, type, scales (-1: none) } }] }.
void ParseExperts(const Napi::Object& x, FlashSetup& s) {
  s.experts_per_layer = static_cast<int>(Num(x, "perLayer"));
  s.expert_pool_bytes = static_cast<size_t>(Num(x, "poolBytes"));
  s.pregate = x.Get("pregate").ToBoolean().Value();
  if (!x.Get("spans").IsArray()) throw ToJsError(x.Env(), "BAD_ARGUMENT", "flash spec field experts.spans must be an array");
  Napi::Array spans = x.Get("spans").As<Napi::Array>();
  for (uint32_t i = 0; i < spans.Length(); i++) {
    Napi::Object o = spans.Get(i).As<Napi::Object>();
    ExpertSpan e;
    e.offset = static_cast<uint64_t>(Num(o, "offset"));
    e.bytes = static_cast<uint64_t>(Num(o, "bytes"));
    e.out_offset = static_cast<uint64_t>(Num(o, "outOffset"));
    e.rec_in = static_cast<uint32_t>(Num(o, "recIn"));
    e.rec_out = static_cast<uint32_t>(Num(o, "recOut"));
    e.n_in = static_cast<int64_t>(Num(o, "nIn"));
    e.n_ff = static_cast<int64_t>(Num(o, "nFf"));
    if (e.offset % kIoAlign != 0 || e.bytes % kIoAlign != 0 || e.bytes == 0) {
      throw ToJsError(x.Env(), "BAD_ARGUMENT", "expert span " + std::to_string(i) + " is not whole 4 KiB pages");
    }
    Napi::Array parts = o.Get("parts").As<Napi::Array>();
    if (parts.Length() != 3) throw ToJsError(x.Env(), "BAD_ARGUMENT", "expert span " + std::to_string(i) + " needs 3 parts (gate, up, down)");
    ExpertPart* dst[3] = {&e.gate, &e.up, &e.down};
    for (uint32_t k = 0; k < 3; k++) {
      Napi::Object p = parts.Get(k).As<Napi::Object>();
      dst[k]->offset = static_cast<uint32_t>(Num(p, "offset"));
      dst[k]->bytes = static_cast<uint32_t>(Num(p, "bytes"));
      dst[k]->n_out = static_cast<int64_t>(Num(p, "nOut"));
      dst[k]->type = static_cast<int>(Num(p, "type"));
      dst[k]->scales = static_cast<int64_t>(Num(p, "scales"));
      const bool split = dst[k]->scales >= 0;
      if (split ? !af_colx_supported(dst[k]->type) : !af_col_supported(dst[k]->type)) {
        throw ToJsError(x.Env(), "BAD_ARGUMENT", "expert span " + std::to_string(i) + " part " + std::to_string(k) + " has unsupported type " +
                                                     std::to_string(dst[k]->type));
      }
    }
    const uint64_t end = e.out_offset + static_cast<uint64_t>(e.rec_out) * e.n_ff;
    if (static_cast<uint64_t>(e.rec_in) * e.n_in > e.out_offset || end > e.bytes) {
      throw ToJsError(x.Env(), "BAD_ARGUMENT", "expert span " + std::to_string(i) + ": records run past its " + std::to_string(e.bytes) + " bytes");
    }
    s.experts.push_back(std::move(e));
  }
}

// The flash half of loadModel's spec: extents, checksums and the budget split.
std::shared_ptr<FlashSetup> ParseFlash(const Napi::Object& f) {
  auto s = std::make_shared<FlashSetup>();
  s->group_size = static_cast<int>(Num(f, "groupSize"));
  s->cache_bytes = static_cast<size_t>(Num(f, "cacheBytes"));
  s->verify = f.Get("verify").ToBoolean().Value();
  s->direct = f.Get("direct").IsUndefined() ? true : f.Get("direct").ToBoolean().Value();
  s->embd_resident = f.Get("embdResident").ToBoolean().Value();
  s->head_resident = f.Get("headResident").ToBoolean().Value();
  if (f.Get("headStagingBytes").IsNumber()) s->head_staging_bytes = static_cast<size_t>(Num(f, "headStagingBytes"));
  if (f.Get("queueDepth").IsNumber()) s->queue_depth = static_cast<unsigned>(Num(f, "queueDepth"));
  if (f.Get("maxRead").IsNumber()) s->max_read = static_cast<uint32_t>(Num(f, "maxRead"));
  if (f.Get("maxGap").IsNumber()) {
    s->max_gap = static_cast<int64_t>(Num(f, "maxGap"));
    s->fixed_gap = true;
  }
  if (f.Get("maxBackground").IsNumber()) s->max_background = static_cast<unsigned>(Num(f, "maxBackground"));
  if (f.Get("preloadBytes").IsNumber()) s->preload_bytes = static_cast<size_t>(Num(f, "preloadBytes"));
  if (f.Get("predict").IsBoolean()) s->predict = f.Get("predict").As<Napi::Boolean>().Value();
  if (f.Get("readAhead").IsBoolean()) s->read_ahead = f.Get("readAhead").As<Napi::Boolean>().Value();
  if (f.Get("predictMargin").IsNumber()) s->predict_margin = static_cast<float>(Num(f, "predictMargin"));
  if (f.Get("experts").IsObject()) ParseExperts(f.Get("experts").As<Napi::Object>(), *s);
  if (f.Get("cachePolicy").IsString()) {
    try {
      s->cache_policy = ParseCachePolicy(f.Get("cachePolicy").As<Napi::String>().Utf8Value());
    } catch (const ModelError& e) {
      throw ToJsError(f.Env(), e.code, e.what());
    }
  }
  if (!f.Get("readCost").IsUndefined()) s->read_cost = ParseReadCost(f.Env(), f.Get("readCost")).points();
  if (f.Get("crcs").IsTypedArray()) {
    auto c = f.Get("crcs").As<Napi::Uint32Array>();
    s->crcs.assign(c.Data(), c.Data() + c.ElementLength());
    s->crc_base = static_cast<uint64_t>(Num(f, "crcBase"));
  }
  if (s->group_size < 1) throw ToJsError(f.Env(), "BAD_ARGUMENT", "flash spec groupSize must be >= 1");
  Napi::Array ex = f.Get("extents").As<Napi::Array>();
  for (uint32_t i = 0; i < ex.Length(); i++) {
    Napi::Object o = ex.Get(i).As<Napi::Object>();
    FlashExtent e;
    e.group = static_cast<int>(Num(o, "group"));
    e.site = static_cast<int>(Num(o, "site"));
    e.first_layer = static_cast<int>(Num(o, "firstLayer"));
    e.layers = static_cast<int>(Num(o, "layers"));
    e.tensors = static_cast<int>(Num(o, "tensors"));
    e.type = static_cast<int>(Num(o, "type"));
    e.n_in = static_cast<int64_t>(Num(o, "nIn"));
    e.offset = static_cast<uint64_t>(Num(o, "offset"));
    e.record_bytes = static_cast<uint32_t>(Num(o, "recordBytes"));
    Napi::Array parts = o.Get("parts").As<Napi::Array>();
    if (static_cast<int>(parts.Length()) != e.layers * e.tensors) {
      throw ToJsError(f.Env(), "BAD_ARGUMENT", "extent " + std::to_string(i) + " needs layers * tensors parts");
    }
    for (uint32_t k = 0; k < parts.Length(); k++) {
      Napi::Object p = parts.Get(k).As<Napi::Object>();
      FlashPart part;
      part.offset = static_cast<uint32_t>(Num(p, "offset"));
      part.bytes = static_cast<uint32_t>(Num(p, "bytes"));
      part.n_out = static_cast<int64_t>(Num(p, "nOut"));
      part.type = p.Get("type").IsNumber() ? static_cast<int>(Num(p, "type")) : e.type;
      if (p.Get("scales").IsString()) part.scales_name = p.Get("scales").As<Napi::String>();
      const std::string where = "extent " + std::to_string(i) + " part " + std::to_string(k);
      if (part.scales_name.empty() ? !af_col_supported(part.type) : !af_colx_supported(part.type)) {
        throw ToJsError(f.Env(), "GGUF_UNKNOWN_TYPE", where + " has unsupported " + (part.scales_name.empty() ? "column" : "split") +
                                                          " type " + std::to_string(part.type));
      }
      const int64_t want = part.scales_name.empty() ? static_cast<int64_t>(af_row_bytes(part.type, part.n_out))
                                                    : af_colx_code_bytes(part.type, part.n_out);
      if (want != static_cast<int64_t>(part.bytes)) {
        throw ToJsError(f.Env(), "BAD_ARGUMENT", where + " holds " + std::to_string(part.bytes) + " bytes, " +
                                                     std::to_string(part.n_out) + " rows of type " + std::to_string(part.type) +
                                                     " need " + std::to_string(want));
      }
      if (static_cast<uint64_t>(part.offset) + part.bytes > e.record_bytes) {
        throw ToJsError(f.Env(), "BAD_ARGUMENT", "extent " + std::to_string(i) + " part " + std::to_string(k) + " lies outside its record");
      }
      e.parts.push_back(part);
    }
    // Optional record order (channel -> record) and per-record frequencies.
    if (o.Get("recordOf").IsTypedArray()) {
      auto r = o.Get("recordOf").As<Napi::Int32Array>();
      if (static_cast<int64_t>(r.ElementLength()) != e.n_in) {
        throw ToJsError(f.Env(), "BAD_ARGUMENT", "extent " + std::to_string(i) + " recordOf holds " + std::to_string(r.ElementLength()) +
                                                     " entries, expected n_in " + std::to_string(e.n_in));
      }
      std::vector<uint8_t> seen(static_cast<size_t>(e.n_in), 0);
      for (size_t k = 0; k < r.ElementLength(); k++) {
        const int32_t v = r[k];
        if (v < 0 || v >= e.n_in || seen[static_cast<size_t>(v)]) {
          throw ToJsError(f.Env(), "BAD_ARGUMENT", "extent " + std::to_string(i) + " recordOf is not a permutation (entry " + std::to_string(k) +
                                                       " = " + std::to_string(v) + ")");
        }
        seen[static_cast<size_t>(v)] = 1;
      }
      e.record_of.assign(r.Data(), r.Data() + r.ElementLength());
    }
    if (o.Get("recordFreq").IsTypedArray()) {
      auto q = o.Get("recordFreq").As<Napi::Float32Array>();
      if (static_cast<int64_t>(q.ElementLength()) != e.n_in) {
        throw ToJsError(f.Env(), "BAD_ARGUMENT", "extent " + std::to_string(i) + " recordFreq holds " + std::to_string(q.ElementLength()) +
                                                     " entries, expected n_in " + std::to_string(e.n_in));
      }
      e.record_freq.assign(q.Data(), q.Data() + q.ElementLength());
    }
    s->extents.push_back(std::move(e));
  }
  return s;
}

// loadModel({ path, config, tensors: [{ name, type, dims, offset }], threads }): Promise<NativeModel>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw ToJsError(env, "BAD_ARGUMENT", "loadModel(spec) needs an object");
  Napi::Object spec = info[0].As<Napi::Object>();
  if (!spec.Get("path").IsString()) throw ToJsError(env, "BAD_ARGUMENT", "loadModel: spec.path must be a string");
  std::string path = spec.Get("path").As<Napi::String>();
  if (!spec.Get("config").IsObject()) throw ToJsError(env, "BAD_ARGUMENT", "loadModel: spec.config must be an object");
  Napi::Object c = spec.Get("config").As<Napi::Object>();
  ModelConfig cfg;
  cfg.n_layer = GetInt(c, "nLayer", 0, true);
  cfg.n_embd = GetInt(c, "nEmbd", 0, true);
  cfg.n_ff = GetInt(c, "nFf", 0, true);
  cfg.n_head = GetInt(c, "nHead", 0, true);
  cfg.n_head_kv = GetInt(c, "nHeadKv", 0, true);
  cfg.head_dim = GetInt(c, "headDim", 0, true);
  cfg.n_vocab = GetInt(c, "nVocab", 0, true);
  cfg.n_rot = GetInt(c, "nRot", cfg.head_dim, false);
  cfg.rope_theta = GetFloat(c, "ropeTheta", 10000.0f);
  cfg.rms_eps = GetFloat(c, "rmsEps", 1e-5f);
  cfg.rope_neox = c.Get("ropeNeox").ToBoolean().Value();
  cfg.rope_attn_factor = GetFloat(c, "ropeAttnFactor", 1.0f);
  cfg.n_ctx = GetInt(c, "nCtx", 2048, false);
  cfg.n_batch = GetInt(c, "nBatch", 64, false);
  cfg.embd_scale = GetFloat(c, "embdScale", 1.0f);
  cfg.attn_scale = GetFloat(c, "attnScale", 0.0f);
  cfg.attn_softcap = GetFloat(c, "attnSoftcap", 0.0f);
  cfg.final_softcap = GetFloat(c, "finalSoftcap", 0.0f);
  cfg.ffn_gelu = c.Get("ffnGelu").ToBoolean().Value();
  cfg.post_norms = c.Get("postNorms").ToBoolean().Value();
  cfg.n_swa = GetInt(c, "slidingWindow", 0, false);
  cfg.rope_theta_swa = GetFloat(c, "ropeThetaSwa", cfg.rope_theta);
  cfg.rope_scale = GetFloat(c, "ropeScale", 1.0f);
  cfg.rope_scale_swa = GetFloat(c, "ropeScaleSwa", 1.0f);
  if (c.Get("swaLayers").IsArray()) {
    Napi::Array a = c.Get("swaLayers").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) cfg.swa_layers.push_back(a.Get(i).ToBoolean().Value() ? 1 : 0);
  }
  if (c.Get("moe").IsObject()) {
    Napi::Object moe = c.Get("moe").As<Napi::Object>();
    cfg.moe.n_expert = GetInt(moe, "nExpert", 0, true);
    cfg.moe.n_expert_used = GetInt(moe, "nExpertUsed", 0, true);
    cfg.moe.n_ff_exp = GetInt(moe, "nFfExp", 0, true);
    cfg.moe.norm_weights = moe.Get("normWeights").ToBoolean().Value();
    cfg.moe.n_ff_shexp = GetInt(moe, "nFfShexp", 0, false);
  }
  const int threads = spec.Get("threads").IsNumber() ? spec.Get("threads").As<Napi::Number>().Int32Value() : 1;
  if (!spec.Get("tensors").IsArray()) throw ToJsError(env, "BAD_ARGUMENT", "loadModel: spec.tensors must be an array");
  Napi::Array arr = spec.Get("tensors").As<Napi::Array>();
  auto tensors = std::make_shared<std::vector<TensorSpec>>();
  tensors->reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object t = arr.Get(i).As<Napi::Object>();
    TensorSpec s;
    s.name = t.Get("name").As<Napi::String>();
    s.type = t.Get("type").As<Napi::Number>().Int32Value();
    s.offset = static_cast<uint64_t>(t.Get("offset").As<Napi::Number>().DoubleValue());
    Napi::Array dims = t.Get("dims").As<Napi::Array>();
    for (uint32_t d = 0; d < dims.Length(); d++) s.dims.push_back(dims.Get(d).As<Napi::Number>().Int64Value());
    tensors->push_back(std::move(s));
  }
  std::shared_ptr<FlashSetup> flash;
  if (spec.Get("flash").IsObject()) flash = ParseFlash(spec.Get("flash").As<Napi::Object>());
  auto result = std::make_shared<std::shared_ptr<Model>>();
  auto* task = new AsyncTask(
      env,
      [result, path, cfg, tensors, threads, flash] {
        *result = std::make_shared<Model>(path, cfg, *tensors, threads,
                                          flash ? std::make_unique<FlashSetup>(*flash) : nullptr);
      },
      [result](Napi::Env env) -> Napi::Value {
        Napi::Object obj = g_model_ctor->New({});
        NativeModel::Unwrap(obj)->Attach(env, *result);
        return obj;
      });
  Napi::Promise p = task->Promise();
  task->Queue();
  return p;
}

}  // namespace

void RegisterModelBindings(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeModel::Define(env);
  g_model_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("NativeModel", ctor);
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
}

}  // namespace activeflow
