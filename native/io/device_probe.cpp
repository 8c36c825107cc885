#include "io/device_probe.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/flash_file.h"
#include "io/io_engine.h"
#include "io/io_error.h"

namespace activeflow {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Latency samples kept at most (a reservoir would be fairer; the first ones are enough for
// percentiles of a steady random load).
constexpr size_t kMaxSamples = 1 << 18;

}  // namespace

ProbeResult ProbeRandomReads(const std::string& path, const ProbeOptions& o) {
  if (o.block_bytes < kIoAlign || o.block_bytes % kIoAlign != 0 || o.block_bytes > (64u << 20)) {
    throw IoError("BAD_ARGUMENT", "probe block size " + std::to_string(o.block_bytes) + " must be a multiple of 4096 up to 64 MiB");
  }
  if (o.queue_depth < 1 || o.queue_depth > 1024) {
    throw IoError("BAD_ARGUMENT", "probe queue depth " + std::to_string(o.queue_depth) + " must be in 1..1024");
  }
  if (!(o.seconds > 0) || o.seconds > 600) throw IoError("BAD_ARGUMENT", "probe seconds must be in (0, 600]");
  if (!(o.warmup_seconds >= 0) || o.warmup_seconds > 60) throw IoError("BAD_ARGUMENT", "probe warm-up seconds must be in [0, 60]");
  FlashFile file(path, o.direct);
  const uint64_t blocks = file.size() / o.block_bytes;
  if (blocks < 2) {
    throw IoError("BAD_ARGUMENT", path + ": " + std::to_string(file.size()) + " bytes hold fewer than 2 blocks of " +
                                      std::to_string(o.block_bytes));
  }
  std::unique_ptr<IoEngine> engine;
  if (o.backend == IoBackend::kPread) {
    engine = MakePreadPoolEngine(file.fd(), o.queue_depth);
  } else {
    try {
      engine = MakeIoUringEngine(file.fd(), o.queue_depth);
    } catch (const IoError&) {
      if (o.backend == IoBackend::kIoUring) throw;
      engine = MakePreadPoolEngine(file.fd(), o.queue_depth);
    }
  }
  AlignedBuffer bufs(static_cast<size_t>(o.queue_depth) * o.block_bytes);
  // Touch the buffers once so page faults are not measured as device time.
  for (size_t i = 0; i < bufs.size(); i += kIoAlign) bufs.data()[i] = 0;

  uint64_t x = o.seed * 0x9E3779B97F4A7C15ull + 1;
  auto next_block = [&] {  // xorshift64*
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    return (x * 0x2545F4914F6CDD1Dull) % blocks;
  };
  std::vector<double> started(o.queue_depth);
  std::vector<float> lat;
  lat.reserve(kMaxSamples);
  ProbeResult r;
  r.backend = engine->name();
  r.direct = file.mode() == FlashMode::kDirect;
  auto issue = [&](unsigned slot) {
    started[slot] = Now();
    engine->submit({bufs.data() + static_cast<size_t>(slot) * o.block_bytes, o.block_bytes, next_block() * o.block_bytes, slot});
  };
  const double start = Now(), t0 = start + o.warmup_seconds, deadline = t0 + o.seconds;
  for (unsigned s = 0; s < o.queue_depth; s++) issue(s);
  unsigned in_flight = o.queue_depth;
  std::vector<IoDone> done(o.queue_depth);
  double lat_sum = 0;
  while (in_flight > 0) {
    const size_t n = engine->reap(done.data(), done.size());
    const double now = Now();
    for (size_t i = 0; i < n; i++) {
      const unsigned slot = static_cast<unsigned>(done[i].tag);
      if (done[i].result < 0) {
        throw IoError("FLASH_IO", path + ": probe read failed: " + std::to_string(-done[i].result), static_cast<int>(-done[i].result));
      }
      if (started[slot] >= t0) {
        r.reads++;
        r.bytes += static_cast<uint64_t>(done[i].result);
        const double l = (now - started[slot]) * 1e6;
        lat_sum += l;
        if (lat.size() < kMaxSamples) lat.push_back(static_cast<float>(l));
      }
      if (now < deadline) issue(slot);
      else in_flight--;
    }
  }
  // Reads issued before the deadline finish after it; counting from t0 to the last completion
  // of a counted read would need per-read bookkeeping, so the deadline is the end.
  r.seconds = o.seconds;
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    r.mean_latency_us = lat_sum / static_cast<double>(r.reads);
    r.p50_latency_us = lat[lat.size() / 2];
    r.p99_latency_us = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  }
  if (!r.direct) file.drop_cached(0, file.size());
  return r;
}

}  // namespace activeflow
