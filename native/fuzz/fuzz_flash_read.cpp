// libFuzzer target: batched record reads from a flash file (read planning, the pread engine,
// page-checksum verification) with any requests, merge rule, read size and checksum table.
// A read either throws IoError or returns exactly the file's bytes; with a correct table it
// never reports a checksum error; nothing else (crash, overflow, other exception) is allowed.
#include <fuzzer/FuzzedDataProvider.h>
#include <cstring>
#include <memory>
#include <vector>
#include "fuzz/fuzz_common.h"
#include "io/crc32c.h"
#include "io/io_error.h"
#include "io/reader.h"

using namespace activeflow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint32_t max_read = 4096u * in.ConsumeIntegralInRange<uint32_t>(1, 8);
  const int64_t max_gap = in.ConsumeIntegralInRange<int64_t>(-1, 1 << 16);
  const bool verify = in.ConsumeBool();
  const int corrupt = in.ConsumeIntegralInRange<int>(-1, 31);  // a table entry to flip, -1: none
  const uint64_t base_page = in.ConsumeIntegralInRange<uint64_t>(0, 2);
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 12);
  struct Want { uint64_t offset; uint32_t length; };
  std::vector<Want> wants(n);
  for (auto& w : wants) {
    w.offset = in.ConsumeIntegralInRange<uint64_t>(0, 1 << 17);
    w.length = in.ConsumeIntegralInRange<uint32_t>(0, 3 * 4096);
  }
  const std::vector<uint8_t> bytes = in.ConsumeRemainingBytes<uint8_t>();
  fuzz::MemFile mem(bytes.data(), bytes.size());

  // The page table of [base, EOF), as the converter writes it, maybe with one entry flipped.
  const uint64_t base = base_page * 4096;
  std::vector<uint32_t> crcs;
  for (uint64_t at = base; at < bytes.size(); at += 4096) {
    crcs.push_back(Crc32c(bytes.data() + at, static_cast<size_t>(std::min<uint64_t>(4096, bytes.size() - at))));
  }
  if (corrupt >= 0 && static_cast<size_t>(corrupt) < crcs.size()) crcs[corrupt] ^= 1;
  PageChecksums sums{crcs.data(), base, crcs.size()};

  std::vector<std::vector<uint8_t>> dst(n);
  std::vector<ReadReq> reqs(n);
  for (size_t i = 0; i < n; i++) {
    dst[i].assign(wants[i].length, 0xA5);
    reqs[i] = {wants[i].offset, wants[i].length, dst[i].data()};
  }
  bool in_file = true;
  for (const auto& w : wants) in_file = in_file && w.offset + w.length <= bytes.size();
  try {
    auto file = std::make_shared<const FlashFile>(mem.path(), /*direct=*/false);
    ReaderOptions ro;
    ro.backend = IoBackend::kPread;
    ro.queue_depth = 4;
    ro.max_read = max_read;
    ro.max_gap = max_gap;
    ro.staging_slots = 2;
    Reader reader(file, ro);
    reader.read(reqs.data(), n, verify ? &sums : nullptr);
  } catch (const IoError& e) {
    // A range past EOF is refused; a flipped table entry may be caught; nothing else fails.
    if (in_file && !(e.code == "FLASH_CHECKSUM" && verify && corrupt >= 0)) {
      std::fprintf(stderr, "unexpected IoError %s: %s\n", e.code.c_str(), e.what());
      std::abort();
    }
    return 0;
  }
  if (!in_file) {
    std::fprintf(stderr, "a read past the end of the file succeeded\n");
    std::abort();
  }
  for (size_t i = 0; i < n; i++) {
    if (wants[i].length > 0 && std::memcmp(dst[i].data(), bytes.data() + wants[i].offset, wants[i].length) != 0) {
      std::fprintf(stderr, "request %zu [%llu, +%u) landed other bytes\n", i, static_cast<unsigned long long>(wants[i].offset), wants[i].length);
      std::abort();
    }
  }
  return 0;
}
