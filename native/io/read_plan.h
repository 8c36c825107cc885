// Turns a batch of arbitrary byte ranges into few large aligned device reads: ranges are
// sorted, widened to 4 KiB pages, merged across the gap between them when the merge rule
// says one read of the span is cheaper than two, and each read is capped at max_read bytes.
// Every request maps to pieces that copy its bytes out of the reads. Pure computation, so
// tests can check the plan without a disk.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/read_cost.h"

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

// Bytes [read_offset, read_offset + length) of a device read go to dst, part of request req.
struct Piece {
  uint32_t read_offset;
  uint32_t length;
  uint8_t* dst;
  uint32_t req;
};

// When two neighbouring ranges share one read (the bytes between them are read and dropped).
struct MergeRule {
  // With a cost curve: when one read of the span costs the device no more time than the two
  // reads apart. Without: when the gap is at most max_gap bytes; max_gap < 0 never merges.
  const ReadCost* cost = nullptr;
  int64_t max_gap = 16 << 10;
};

struct ReadPlan {
  std::vector<DeviceRead> reads;  // sorted by offset, non-overlapping
  std::vector<Piece> pieces;      // grouped by read
  std::vector<uint32_t> pieces_of;  // [n requests] pieces each request was cut into (0 if empty)
  uint64_t bytes_requested = 0;
};

// max_read: a multiple of 4096. Throws IoError("BAD_ARGUMENT") for a range past file_size.
ReadPlan PlanReads(const ReadReq* reqs, size_t n, const MergeRule& rule, uint32_t max_read, uint64_t file_size);

}  // namespace activeflow
