// What the device itself gives: random aligned reads of one size kept at a fixed queue depth
// (every completion immediately replaced by a new read, as fio's randread does), with the I/O
// engine the reader uses. The roofline takes its bound from these points, never from what the
// reader achieved while decoding.
#pragma once
#include <cstdint>
#include <string>

#include "io/reader.h"

namespace activeflow {

struct ProbeOptions {
  uint32_t block_bytes = 4096;  // a multiple of 4096
  unsigned queue_depth = 1;
  double seconds = 1.0;
  // Reads before this are issued but not counted: a throttled device (cgroup blkio) lets a
  // burst through at the start of each slice, and a cold queue starts slow.
  double warmup_seconds = 0.0;
  bool direct = true;
  IoBackend backend = IoBackend::kAuto;
  uint64_t seed = 1;
};

struct ProbeResult {
  uint64_t reads = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  double mean_latency_us = 0;
  double p50_latency_us = 0;
  double p99_latency_us = 0;
  const char* backend = "";
  bool direct = false;
};

// Throws IoError (BAD_ARGUMENT for a bad block size or depth, FLASH_IO for the file).
ProbeResult ProbeRandomReads(const std::string& path, const ProbeOptions& opts);

}  // namespace activeflow
