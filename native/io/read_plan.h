// Turns a batch of arbitrary byte ranges into few large aligned device reads: ranges are
// sorted, widened to 4 KiB pages, merged when the gap between them is at most max_gap, and
// each read is capped at max_read bytes. Every request maps to pieces that copy its bytes
// out of the reads. Pure computation, so tests can check the plan without a disk.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace activeflow {

// One range the caller wants: bytes [offset, offset + length) of the file land in dst.
struct ReadReq {
  uint64_t offset;
  uint32_t length;
  uint8_t* dst;
};

// One aligned read of the device; its pieces are pieces[first_piece, first_piece + n_pieces).
struct DeviceRead {
  uint64_t offset;  // multiple of 4096
  uint32_t length;  // multiple of 4096; may extend past EOF up to the page holding EOF
  uint32_t first_piece;
  uint32_t n_pieces;
};

// Bytes [read_offset, read_offset + length) of a device read go to dst.
struct Piece {
  uint32_t read_offset;
  uint32_t length;
  uint8_t* dst;
};

struct ReadPlan {
  std::vector<DeviceRead> reads;  // sorted by offset, non-overlapping
  std::vector<Piece> pieces;      // grouped by read
  uint64_t bytes_requested = 0;
};

// max_gap < 0 turns merging off (each request reads alone; used by benchmarks).
// max_read: a multiple of 4096. Throws IoError("BAD_ARGUMENT") for a range past file_size.
ReadPlan PlanReads(const ReadReq* reqs, size_t n, int64_t max_gap, uint32_t max_read, uint64_t file_size);

}  // namespace activeflow
