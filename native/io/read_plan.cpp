#include "io/read_plan.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "io/aligned_buffer.h"
#include "io/io_error.h"

namespace activeflow {

namespace {

void Emit(std::vector<DeviceRead>& reads, uint64_t s, uint64_t e, uint32_t max_read) {
  // Only a single request longer than max_read gets here with e - s > max_read.
  while (s < e) {
    const uint64_t len = std::min<uint64_t>(e - s, max_read);
    reads.push_back({s, static_cast<uint32_t>(len), 0, 0});
    s += len;
  }
}

}  // namespace

ReadPlan PlanReads(const ReadReq* reqs, size_t n, const MergeRule& rule, uint32_t max_read, uint64_t file_size) {
  if (max_read < kIoAlign || max_read % kIoAlign != 0) {
    throw IoError("BAD_ARGUMENT", "max read " + std::to_string(max_read) + " must be a positive multiple of 4096");
  }
  ReadPlan plan;
  std::vector<uint32_t> order;
  order.reserve(n);
  for (size_t i = 0; i < n; i++) {
    const ReadReq& r = reqs[i];
    if (r.offset > file_size || r.length > file_size - r.offset) {
      throw IoError("BAD_ARGUMENT", "read range " + std::to_string(i) + " [" + std::to_string(r.offset) + ", +" +
                                        std::to_string(r.length) + ") ends past the file size " +
                                        std::to_string(file_size));
    }
    if (r.length == 0) continue;
    plan.bytes_requested += r.length;
    order.push_back(static_cast<uint32_t>(i));
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return reqs[a].offset < reqs[b].offset; });

  // Sweep the page-widened extents in offset order, growing the current read while the rule
  // merges the next extent into it and the read stays within max_read. With a cost curve the
  // test is greedy: the current read grown over the gap against the current read plus a read
  // of the next extent alone.
  bool open = false;
  uint64_t cs = 0, ce = 0;
  for (uint32_t i : order) {
    const uint64_t s = AlignDown(reqs[i].offset);
    const uint64_t e = AlignUp(reqs[i].offset + reqs[i].length);
    if (!open) {
      cs = s, ce = e, open = true;
      continue;
    }
    if (e <= ce) continue;  // inside the current read
    bool merge;
    if (rule.cost) {
      // Touching or overlapping extents always share the read.
      merge = s <= ce || rule.cost->seconds(e - cs) <= rule.cost->seconds(ce - cs) + rule.cost->seconds(e - s);
    } else {
      merge = rule.max_gap >= 0 && s <= ce + static_cast<uint64_t>(rule.max_gap);
    }
    if (merge && e - cs <= max_read) {
      ce = e;
      continue;
    }
    Emit(plan.reads, cs, ce, max_read);
    cs = std::max(s, ce), ce = e;  // an overlapping tail starts where the last read ended
  }
  if (open) Emit(plan.reads, cs, ce, max_read);

  // Pieces: each request's intersection with each read it spans, grouped by read.
  struct Tagged {
    uint32_t read;
    Piece piece;
  };
  std::vector<Tagged> tagged;
  tagged.reserve(order.size());
  plan.pieces_of.assign(n, 0);
  for (uint32_t i : order) {
    const uint64_t off = reqs[i].offset, end = off + reqs[i].length;
    auto it = std::upper_bound(plan.reads.begin(), plan.reads.end(), off,
                               [](uint64_t o, const DeviceRead& r) { return o < r.offset; });
    size_t k = static_cast<size_t>(it - plan.reads.begin()) - 1;  // the read holding off
    for (; k < plan.reads.size() && plan.reads[k].offset < end; k++) {
      const DeviceRead& r = plan.reads[k];
      const uint64_t a = std::max(off, r.offset), b = std::min(end, r.offset + r.length);
      if (a >= b) continue;
      tagged.push_back({static_cast<uint32_t>(k),
                        {static_cast<uint32_t>(a - r.offset), static_cast<uint32_t>(b - a), reqs[i].dst + (a - off), i}});
      plan.pieces_of[i]++;
    }
  }
  std::stable_sort(tagged.begin(), tagged.end(), [](const Tagged& a, const Tagged& b) { return a.read < b.read; });
  plan.pieces.reserve(tagged.size());
  for (const Tagged& t : tagged) {
    DeviceRead& r = plan.reads[t.read];
    if (r.n_pieces == 0) r.first_piece = static_cast<uint32_t>(plan.pieces.size());
    r.n_pieces++;
    plan.pieces.push_back(t.piece);
  }
  return plan;
}

}  // namespace activeflow
