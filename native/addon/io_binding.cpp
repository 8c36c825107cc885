// Flash I/O bindings for tests and benchmarks (the engine calls native/io directly from C++):
// openFlashFile -> a handle whose readRanges runs a coalesced batch on a libuv worker thread,
// crc32c, and planFlashReads to inspect coalescing without a disk.
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "addon/async_task.h"
#include "addon/bindings.h"
#include "io/aligned_buffer.h"
#include "io/crc32c.h"
#include "io/device_probe.h"
#include "io/flash_file.h"
#include "io/io_error.h"
#include "io/read_plan.h"
#include "io/reader.h"

namespace activeflow {

namespace {


// Runs a synchronous native call, turning IoError into a coded JS error.
template <typename F>
auto Guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const IoError& e) {
    throw ToJsError(env, e.code, e.what());
  }
}

IoBackend ParseBackend(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return IoBackend::kAuto;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "auto") return IoBackend::kAuto;
  if (s == "io_uring") return IoBackend::kIoUring;
  if (s == "pread") return IoBackend::kPread;
  throw ToJsError(env, "BAD_ARGUMENT", "backend must be \"auto\", \"io_uring\" or \"pread\", got " + v.ToString().Utf8Value());
}

uint32_t GetU32(Napi::Env env, const Napi::Value& v, const char* what, uint32_t fallback) {
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) {
    throw ToJsError(env, "BAD_ARGUMENT", std::string(what) + " must be a non-negative number");
  }
  return v.As<Napi::Number>().Uint32Value();
}

// offsets: Float64Array or BigUint64Array; lengths: Uint32Array of the same length.
std::vector<ReadReq> ParseRanges(Napi::Env env, const Napi::Value& offs, const Napi::Value& lens) {
  if (!lens.IsTypedArray() || lens.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw ToJsError(env, "BAD_ARGUMENT", "lengths must be a Uint32Array");
  }
  auto l = lens.As<Napi::Uint32Array>();
  std::vector<ReadReq> reqs(l.ElementLength());
  if (!offs.IsTypedArray()) throw ToJsError(env, "BAD_ARGUMENT", "offsets must be a Float64Array or BigUint64Array");
  auto ta = offs.As<Napi::TypedArray>();
  if (ta.ElementLength() != reqs.size()) {
    throw ToJsError(env, "BAD_ARGUMENT", "offsets holds " + std::to_string(ta.ElementLength()) + " values, lengths " +
                                             std::to_string(reqs.size()));
  }
  if (ta.TypedArrayType() == napi_float64_array) {
    const double* o = offs.As<Napi::Float64Array>().Data();
    for (size_t i = 0; i < reqs.size(); i++) {
      if (!(o[i] >= 0) || o[i] > 9007199254740991.0 || o[i] != static_cast<double>(static_cast<uint64_t>(o[i]))) {
        throw ToJsError(env, "BAD_ARGUMENT", "offsets[" + std::to_string(i) + "] = " + std::to_string(o[i]) +
                                                 " is not a non-negative integer");
      }
      reqs[i] = {static_cast<uint64_t>(o[i]), l[i], nullptr};
    }
  } else if (ta.TypedArrayType() == napi_biguint64_array) {
    const uint64_t* o = offs.As<Napi::TypedArrayOf<uint64_t>>().Data();
    for (size_t i = 0; i < reqs.size(); i++) reqs[i] = {o[i], l[i], nullptr};
  } else {
    throw ToJsError(env, "BAD_ARGUMENT", "offsets must be a Float64Array or BigUint64Array");
  }
  return reqs;
}

Napi::Object StatsToJs(Napi::Env env, const ReadStats& s, const char* backend) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesRequested", Napi::Number::New(env, static_cast<double>(s.bytes_requested)));
  o.Set("bytesRead", Napi::Number::New(env, static_cast<double>(s.bytes_read)));
  o.Set("deviceReads", Napi::Number::New(env, static_cast<double>(s.device_reads)));
  o.Set("pagesVerified", Napi::Number::New(env, static_cast<double>(s.pages_verified)));
  o.Set("inPlaceReads", Napi::Number::New(env, static_cast<double>(s.in_place_reads)));
  o.Set("ioSeconds", Napi::Number::New(env, s.io_seconds));
  o.Set("waitSeconds", Napi::Number::New(env, s.wait_seconds));
  o.Set("backend", Napi::String::New(env, backend));
  return o;
}

class FlashHandle : public Napi::ObjectWrap<FlashHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FlashHandle",
                       {
                           InstanceMethod("readRanges", &FlashHandle::ReadRanges),
                           InstanceMethod("mode", &FlashHandle::Mode),
                           InstanceMethod("size", &FlashHandle::Size),
                           InstanceMethod("backend", &FlashHandle::Backend),
                           InstanceMethod("close", &FlashHandle::Close),
                       });
  }

  FlashHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FlashHandle>(info) {}

  void Attach(std::shared_ptr<FlashFile> f, IoBackend backend, uint32_t max_read) {
    file_ = std::move(f);
    backend_ = backend;
    max_read_ = max_read;
  }

 private:
  const FlashFile& File(Napi::Env env) {
    if (!file_) throw ToJsError(env, "DISPOSED", "flash file has been closed");
    return *file_;
  }

  // One reader per (queue depth, max gap); a new pair replaces it. Running reads keep theirs.
  // Its staging area (queue depth x max read) is reported to V8 as external memory.
  std::shared_ptr<Reader> GetReader(Napi::Env env, unsigned qd, int64_t max_gap) {
    if (!reader_ || reader_->options().queue_depth != qd || reader_->options().max_gap != max_gap) {
      ReaderOptions o;
      o.backend = backend_;
      o.queue_depth = qd;
      o.max_gap = max_gap;
      o.max_read = max_read_;
      auto fresh = Guard(env, [&] { return std::make_shared<Reader>(file_, o); });
      DropReader(env);
      reader_ = std::move(fresh);
      external_ = static_cast<int64_t>(reader_->staging_bytes());
      Napi::MemoryManagement::AdjustExternalMemory(env, external_);
    }
    return reader_;
  }

  void DropReader(Napi::Env env) {
    if (external_ != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -external_);
    external_ = 0;
    reader_.reset();
  }

  // readRanges(offsets, lengths, maxGap?, qd?, { checksums?, checksumBase?, into? })
  Napi::Value ReadRanges(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    File(env);
    std::vector<ReadReq> reqs = ParseRanges(env, info[0], info[1]);
    int64_t max_gap = 16 << 10;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (!info[2].IsNumber()) throw ToJsError(env, "BAD_ARGUMENT", "maxGap must be a number (negative: never merge)");
      max_gap = info[2].As<Napi::Number>().Int64Value();
    }
    const uint32_t qd = GetU32(env, info.Length() > 3 ? info[3] : env.Undefined(), "qd", 32);
    Napi::Object opts = info.Length() > 4 && info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);

    uint64_t total = 0;
    for (const ReadReq& r : reqs) total += r.length;
    Napi::ArrayBuffer buf;
    size_t buf_offset = 0;
    Napi::Value into = opts.Get("into");
    if (!into.IsUndefined()) {
      if (!into.IsTypedArray() || into.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw ToJsError(env, "BAD_ARGUMENT", "into must be a Uint8Array");
      }
      auto u = into.As<Napi::Uint8Array>();
      if (u.ByteLength() < total) {
        throw ToJsError(env, "BAD_ARGUMENT", "into holds " + std::to_string(u.ByteLength()) + " bytes, the ranges need " +
                                                 std::to_string(total));
      }
      buf = u.ArrayBuffer();
      buf_offset = u.ByteOffset();
    } else {
      buf = Napi::ArrayBuffer::New(env, static_cast<size_t>(total));
    }
    uint8_t* base = static_cast<uint8_t*>(buf.Data()) + buf_offset;
    uint64_t at = 0;
    for (ReadReq& r : reqs) {
      r.dst = base + at;
      at += r.length;
    }

    auto sums = std::make_shared<PageChecksums>();
    Napi::Value table = opts.Get("checksums");
    if (!table.IsUndefined()) {
      if (!table.IsTypedArray() || table.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
        throw ToJsError(env, "BAD_ARGUMENT", "checksums must be a Uint32Array (CRC-32C per 4 KiB page)");
      }
      auto t = table.As<Napi::Uint32Array>();
      sums->crcs = t.Data();
      sums->pages = t.ElementLength();
      Napi::Value b = opts.Get("checksumBase");
      sums->base = b.IsNumber() ? static_cast<uint64_t>(b.As<Napi::Number>().Int64Value()) : 0;
    }

    std::shared_ptr<Reader> reader = GetReader(env, qd, max_gap);
    auto stats = std::make_shared<ReadStats>();
    auto shared_reqs = std::make_shared<std::vector<ReadReq>>(std::move(reqs));
    Napi::Reference<Napi::ArrayBuffer> keep_buf = Napi::Persistent(buf);
    auto* task = new AsyncTask(
        env,
        [reader, shared_reqs, sums, stats] {
          *stats = reader->read(shared_reqs->data(), shared_reqs->size(), sums->pages ? sums.get() : nullptr);
        },
        [reader, stats, total, buf_offset, ab = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(std::move(keep_buf))](
            Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("data", Napi::Uint8Array::New(env, static_cast<size_t>(total), ab->Value(), buf_offset));
          o.Set("stats", StatsToJs(env, *stats, reader->backend_name()));
          return o;
        });
    if (!table.IsUndefined()) task->Keep(table);
    Napi::Promise p = task->Promise();
    task->Queue();
    return p;
  }

  Napi::Value Mode(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), File(info.Env()).mode_name()); }

  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(File(info.Env()).size()));
  }

  // The engine readRanges will use: "io_uring" or "pread".
  Napi::Value Backend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    File(env);
    if (reader_) return Napi::String::New(env, reader_->backend_name());
    if (backend_ == IoBackend::kPread) return Napi::String::New(env, "pread");
    if (backend_ == IoBackend::kIoUring) return Napi::String::New(env, "io_uring");
    return Napi::String::New(env, DefaultIoBackendName());
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    DropReader(info.Env());  // running reads keep their own references until they finish
    file_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<FlashFile> file_;
  std::shared_ptr<Reader> reader_;
  IoBackend backend_ = IoBackend::kAuto;
  uint32_t max_read_ = 1 << 20;
  int64_t external_ = 0;  // bytes reported to V8 for reader_'s staging
};

Napi::FunctionReference* g_flash_ctor = nullptr;

// openFlashFile(path, { direct?, backend?, maxRead? }): FlashHandle
Napi::Value OpenFlashFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw ToJsError(env, "BAD_ARGUMENT", "openFlashFile(path: string, options?)");
  const std::string path = info[0].As<Napi::String>();
  Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  const bool direct = opts.Get("direct").IsUndefined() ? true : opts.Get("direct").ToBoolean().Value();
  const IoBackend backend = ParseBackend(env, opts.Get("backend"));
  const uint32_t max_read = GetU32(env, opts.Get("maxRead"), "maxRead", 1 << 20);
  if (max_read < 4096 || max_read % 4096 != 0 || max_read > (64u << 20)) {
    throw ToJsError(env, "BAD_ARGUMENT", "maxRead " + std::to_string(max_read) + " must be a multiple of 4096 in 4 KiB..64 MiB");
  }
  auto file = Guard(env, [&] { return std::make_shared<FlashFile>(path, direct); });
  if (backend == IoBackend::kIoUring && !IoUringAvailable()) {
    throw ToJsError(env, "FLASH_IO", path + ": io_uring was requested but io_uring_setup is refused on this system");
  }
  Napi::Object obj = g_flash_ctor->New({});
  FlashHandle::Unwrap(obj)->Attach(std::move(file), backend, max_read);
  return obj;
}

// crc32c(bytes: Uint8Array, seed?: number, path?: "auto" | "hw" | "scalar"): number
Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw ToJsError(env, "BAD_ARGUMENT", "crc32c(bytes: Uint8Array, seed?: number, path?: string)");
  }
  auto b = info[0].As<Napi::Uint8Array>();
  const uint32_t seed = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  const std::string path = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "auto";
  uint32_t crc;
  if (path == "auto") {
    crc = Crc32c(b.Data(), b.ByteLength(), seed);
  } else if (path == "scalar") {
    crc = Crc32cScalar(b.Data(), b.ByteLength(), seed);
  } else if (path == "hw") {
    if (!Crc32cHasHw()) throw ToJsError(env, "NATIVE", "crc32c: this CPU has no SSE4.2 crc32 instruction");
    crc = Crc32cHw(b.Data(), b.ByteLength(), seed);
  } else {
    throw ToJsError(env, "BAD_ARGUMENT", "crc32c path must be \"auto\", \"hw\" or \"scalar\", got \"" + path + "\"");
  }
  return Napi::Number::New(env, crc);
}

// crc32cInfo(): { path: "sse42" | "scalar", hw: boolean }
Napi::Value Crc32cInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", Napi::String::New(env, Crc32cPath()));
  o.Set("hw", Napi::Boolean::New(env, Crc32cHasHw()));
  return o;
}

// planFlashReads(offsets, lengths, maxGap, maxRead, fileSize, cost?): { offsets: Float64Array, lengths: Uint32Array }
// With a cost curve the merge rule is the cost test (maxGap is then unused).
Napi::Value PlanFlashReads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<ReadReq> reqs = ParseRanges(env, info[0], info[1]);
  if (info.Length() < 5 || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber()) {
    throw ToJsError(env, "BAD_ARGUMENT", "planFlashReads(offsets, lengths, maxGap, maxRead, fileSize, cost?)");
  }
  static uint8_t sink;  // plans never dereference dst
  for (ReadReq& r : reqs) r.dst = &sink;
  const ReadCost cost = ParseReadCost(env, info.Length() > 5 ? info[5] : env.Undefined());
  MergeRule rule;
  rule.max_gap = info[2].As<Napi::Number>().Int64Value();
  if (!cost.empty()) rule.cost = &cost;
  ReadPlan plan = Guard(env, [&] {
    return PlanReads(reqs.data(), reqs.size(), rule, info[3].As<Napi::Number>().Uint32Value(),
                     static_cast<uint64_t>(info[4].As<Napi::Number>().Int64Value()));
  });
  Napi::Float64Array offs = Napi::Float64Array::New(env, plan.reads.size());
  Napi::Uint32Array lens = Napi::Uint32Array::New(env, plan.reads.size());
  for (size_t i = 0; i < plan.reads.size(); i++) {
    offs[i] = static_cast<double>(plan.reads[i].offset);
    lens[i] = plan.reads[i].length;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("offsets", offs);
  o.Set("lengths", lens);
  o.Set("bytesRequested", Napi::Number::New(env, static_cast<double>(plan.bytes_requested)));
  return o;
}

// readCostSeconds(cost, lengths: Uint32Array): the device time of those reads by the curve.
Napi::Value ReadCostSeconds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw ToJsError(env, "BAD_ARGUMENT", "readCostSeconds(cost, lengths: Uint32Array)");
  }
  const ReadCost cost = ParseReadCost(env, info[0]);
  if (cost.empty()) throw ToJsError(env, "BAD_ARGUMENT", "readCostSeconds needs a read cost curve");
  auto l = info[1].As<Napi::Uint32Array>();
  double t = 0;
  for (size_t i = 0; i < l.ElementLength(); i++) t += cost.seconds(l[i]);
  return Napi::Number::New(env, t);
}

// allocAligned(bytes): a zeroed Uint8Array on 4 KiB-aligned native memory, so aligned ranges
// read into it land in place (no staging copy).
Napi::Value AllocAligned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0 ||
      info[0].As<Napi::Number>().DoubleValue() > 68719476736.0) {
    throw ToJsError(env, "BAD_ARGUMENT", "allocAligned(bytes) needs a byte count in 0..64 GiB");
  }
  const size_t n = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  AlignedBuffer* buf = new AlignedBuffer(n == 0 ? 1 : n);
  std::memset(buf->data(), 0, buf->size());
  const int64_t external = static_cast<int64_t>(buf->size());
  Napi::MemoryManagement::AdjustExternalMemory(env, external);
  auto ab = Napi::ArrayBuffer::New(env, buf->data(), n, [external](Napi::Env env, void*, AlignedBuffer* b) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -external);
    delete b;
  }, buf);
  return Napi::Uint8Array::New(env, n, ab, 0);
}

// ioDefaultBackend(): what "auto" picks here ("io_uring" when io_uring_setup works).
Napi::Value IoDefaultBackend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), DefaultIoBackendName()); }

// ioDefaults(): the I/O path's defaults (native/io/io_defaults.h), so TypeScript plans with them.
Napi::Value IoDefaults(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("queueDepth", Napi::Number::New(env, kDefaultQueueDepth));
  o.Set("maxRead", Napi::Number::New(env, kDefaultMaxRead));
  o.Set("maxBackground", Napi::Number::New(env, kDefaultMaxBackground));
  o.Set("stagingSlots", Napi::Number::New(env, kDefaultStagingSlots));
  o.Set("maxGap", Napi::Number::New(env, static_cast<double>(kDefaultMaxGap)));
  return o;
}

// probeDevice(path, { blockBytes, queueDepth, seconds, direct?, backend?, seed? }): Promise<{...}>
// Random aligned reads of one size kept at a fixed depth, on a worker thread (see device_probe.h).
Napi::Value ProbeDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
    throw ToJsError(env, "BAD_ARGUMENT", "probeDevice(path: string, { blockBytes, queueDepth, seconds })");
  }
  const std::string path = info[0].As<Napi::String>();
  Napi::Object o = info[1].As<Napi::Object>();
  ProbeOptions po;
  po.block_bytes = GetU32(env, o.Get("blockBytes"), "blockBytes", 4096);
  po.queue_depth = GetU32(env, o.Get("queueDepth"), "queueDepth", 1);
  const Napi::Value sec = o.Get("seconds");
  if (!sec.IsUndefined()) {
    if (!sec.IsNumber()) throw ToJsError(env, "BAD_ARGUMENT", "seconds must be a number");
    po.seconds = sec.As<Napi::Number>().DoubleValue();
  }
  const Napi::Value warm = o.Get("warmupSeconds");
  if (!warm.IsUndefined()) {
    if (!warm.IsNumber()) throw ToJsError(env, "BAD_ARGUMENT", "warmupSeconds must be a number");
    po.warmup_seconds = warm.As<Napi::Number>().DoubleValue();
  }
  po.direct = o.Get("direct").IsUndefined() ? true : o.Get("direct").ToBoolean().Value();
  po.backend = ParseBackend(env, o.Get("backend"));
  po.seed = GetU32(env, o.Get("seed"), "seed", 1);
  auto result = std::make_shared<ProbeResult>();
  auto* task = new AsyncTask(
      env, [path, po, result] { *result = ProbeRandomReads(path, po); },
      [result](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("reads", Napi::Number::New(env, static_cast<double>(result->reads)));
        r.Set("bytes", Napi::Number::New(env, static_cast<double>(result->bytes)));
        r.Set("seconds", Napi::Number::New(env, result->seconds));
        r.Set("meanLatencyUs", Napi::Number::New(env, result->mean_latency_us));
        r.Set("p50LatencyUs", Napi::Number::New(env, result->p50_latency_us));
        r.Set("p99LatencyUs", Napi::Number::New(env, result->p99_latency_us));
        r.Set("backend", Napi::String::New(env, result->backend));
        r.Set("direct", Napi::Boolean::New(env, result->direct));
        return r;
      });
  Napi::Promise p = task->Promise();
  task->Queue();
  return p;
}

}  // namespace

// ReadCost from { bytes: number[], seconds: number[] } (undefined: none).
ReadCost ParseReadCost(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return ReadCost();
  if (!v.IsObject()) throw ToJsError(env, "BAD_ARGUMENT", "read cost must be { bytes: number[], seconds: number[] }");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value b = o.Get("bytes"), t = o.Get("seconds");
  if (!b.IsArray() || !t.IsArray() || b.As<Napi::Array>().Length() != t.As<Napi::Array>().Length()) {
    throw ToJsError(env, "BAD_ARGUMENT", "read cost must be { bytes: number[], seconds: number[] } of equal lengths");
  }
  Napi::Array ba = b.As<Napi::Array>(), ta = t.As<Napi::Array>();
  std::vector<ReadCost::Point> pts(ba.Length());
  for (uint32_t i = 0; i < ba.Length(); i++) {
    pts[i] = {ba.Get(i).As<Napi::Number>().Uint32Value(), ta.Get(i).As<Napi::Number>().DoubleValue()};
  }
  try {
    return ReadCost(std::move(pts));
  } catch (const IoError& e) {
    throw ToJsError(env, e.code, e.what());
  }
}

void RegisterIoBindings(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = FlashHandle::Define(env);
  g_flash_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("openFlashFile", Napi::Function::New(env, OpenFlashFile));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs));
  exports.Set("crc32cInfo", Napi::Function::New(env, Crc32cInfo));
  exports.Set("planFlashReads", Napi::Function::New(env, PlanFlashReads));
  exports.Set("ioDefaultBackend", Napi::Function::New(env, IoDefaultBackend));
  exports.Set("ioDefaults", Napi::Function::New(env, IoDefaults));
  exports.Set("readCostSeconds", Napi::Function::New(env, ReadCostSeconds));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned));
  exports.Set("probeDevice", Napi::Function::New(env, ProbeDevice));
}

}  // namespace activeflow
