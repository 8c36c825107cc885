#include "model/column_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "activeflow/col_kernels.h"
#include "activeflow/kernels.h"
#include "model/model.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define AF_PAUSE() _mm_pause()
#else
#define AF_PAUSE() ((void)0)
#endif

namespace activeflow {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Polls of the landing board before sleeping on the waker: a read lands every few
// microseconds while a batch streams, so a short spin saves the futex round trip.
constexpr int kLandingSpins = 2000;
// Channels computed at least per step while reads are landing (a multiple of AF_COL_GROUP):
// fewer, longer kernel calls and wake-ups, still well inside one site's batch.
constexpr size_t kMinChunk = 64;

}  // namespace

ColumnStore::ColumnStore(std::vector<FlashExtent> extents, int group_size, std::shared_ptr<Reader> reader,
                         const PageChecksums* sums, size_t cache_bytes, CachePolicyKind policy, const ReadCost* cost)
    : extents_(std::move(extents)), group_size_(group_size), reader_(std::move(reader)), sums_(sums),
      cache_(extents_, policy, cost) {
  size_t largest = 0;
  for (const auto& e : extents_) largest = std::max(largest, static_cast<size_t>(e.n_in) * e.record_bytes);
  staging_ = AlignedBuffer(largest);
  cache_.resize(cache_bytes);
}

size_t ColumnStore::resident_bytes() const {
  return cache_.allocated() + staging_.size() + bufs_[0].mem.size() + bufs_[1].mem.size();
}

void ColumnStore::set_cache_bytes(size_t bytes) { cache_.resize(bytes); }

void ColumnStore::reset_counts() { cache_.policy().reset_sequence(); }

ColumnStore::~ColumnStore() { drain(); }

void ColumnStore::drain() {
  for (auto& b : bufs_) {
    if (!b.ticket) continue;
    try {
      reader_->wait(b.ticket);
    } catch (...) {
      b.group = -1;  // its records may be incomplete
    }
    b.ticket = 0;
  }
}

void ColumnStore::set_preload_bytes(size_t bytes) {
  drain();
  preload_bytes_ = bytes;
  for (auto& b : bufs_) {
    b = GroupBuf();  // frees the old memory first
    if (bytes >= 2 * 4096) b.mem = AlignedBuffer(bytes / 2);
  }
  if (bytes < 2 * 4096) preload_bytes_ = 0;
}

bool ColumnStore::cached(int group, int site, int32_t channel) const {
  return const_cast<HotCache&>(cache_).slots(static_cast<size_t>(group) * kSites + site).slot_of[channel] >= 0;
}

ColumnStore::GroupBuf& ColumnStore::claim(int group) {
  GroupBuf& b = bufs_[group % 2];
  if (b.ticket) {
    // Only reachable when a pass was aborted between a preload and its use.
    try {
      reader_->wait(b.ticket);
    } catch (...) {
    }
    b.ticket = 0;
  }
  for (int s = 0; s < kSites; s++) {
    const size_t n_in = static_cast<size_t>(extents_[static_cast<size_t>(group) * kSites + s].n_in);
    if (b.off_of[s].size() != n_in) b.off_of[s].assign(n_in, -1);
    for (int32_t j : b.placed[s]) b.off_of[s][j] = -1;
    b.placed[s].clear();
  }
  b.used = 0;
  b.group = group;
  return b;
}

uint8_t* ColumnStore::place(GroupBuf& b, int site, int32_t channel, uint32_t record_bytes) {
  const size_t at = (b.used + 63) & ~size_t{63};
  if (at + record_bytes > b.mem.size()) return nullptr;
  b.used = at + record_bytes;
  b.off_of[site][channel] = static_cast<int64_t>(at);
  b.placed[site].push_back(channel);
  return b.mem.data() + at;
}

void ColumnStore::wait_preload(GroupBuf& b) {
  if (!b.ticket) return;
  const double t0 = Now();
  ReadStats rs;
  try {
    rs = reader_->wait(b.ticket);
  } catch (...) {
    b.ticket = 0;
    b.group = -1;
    throw;
  }
  b.ticket = 0;
  const double t1 = Now();
  stats_.preload_wait_s += t1 - t0;
  stats_.io_wait_s += t1 - t0;
  stats_.preload_io_s += rs.io_seconds;
  stats_.bytes_read += rs.bytes_read;
  stats_.preload_bytes_read += rs.bytes_read;
  stats_.bytes_requested += rs.bytes_requested;
  stats_.device_reads += rs.device_reads;
}

void ColumnStore::preload(int group, std::vector<Candidate>& cands) {
  if (!preloading() || group < 0 || static_cast<size_t>(group) * kSites >= extents_.size()) return;
  GroupBuf& b = claim(group);
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& c) { return a.score > c.score; });
  std::vector<ReadReq> reqs;
  reqs.reserve(cands.size());
  for (const Candidate& cd : cands) {
    const FlashExtent& e = extents_[static_cast<size_t>(group) * kSites + cd.site];
    if (cached(group, cd.site, cd.channel) || b.off_of[cd.site][cd.channel] >= 0) continue;
    uint8_t* dst = place(b, cd.site, cd.channel, e.record_bytes);
    if (!dst) break;  // full: the rest loads on demand if it turns out active
    reqs.push_back({e.offset + static_cast<uint64_t>(cd.channel) * e.record_bytes, e.record_bytes, dst});
  }
  stats_.preload_records += reqs.size();
  if (reqs.empty()) return;
  b.submitted = Now();
  b.ticket = reader_->submit(std::move(reqs), sums_, false);
}

void ColumnStore::fill_prefix(size_t ei, int32_t upto) {
  ExtentSlots& c = cache_.slots(ei);
  const FlashExtent& e = extents_[ei];
  if (upto <= c.valid) return;
  // ReadReq lengths are 32-bit: split the span (extents are far smaller in practice).
  std::vector<ReadReq> reqs;
  const uint64_t per = (uint64_t{1} << 30) / e.record_bytes;
  for (uint64_t j = static_cast<uint64_t>(c.valid); j < static_cast<uint64_t>(upto); j += per) {
    const uint64_t k = std::min<uint64_t>(static_cast<uint64_t>(upto), j + per);
    reqs.push_back({e.offset + j * e.record_bytes, static_cast<uint32_t>((k - j) * e.record_bytes), c.slot(static_cast<int32_t>(j))});
  }
  const double t0 = Now();
  ReadStats rs = reader_->read(reqs.data(), reqs.size(), sums_, true);
  stats_.io_wait_s += Now() - t0;
  stats_.bytes_read += rs.bytes_read;
  stats_.fill_bytes_read += rs.bytes_read;
  stats_.bytes_requested += rs.bytes_requested;
  stats_.device_reads += rs.device_reads;
  for (int32_t j = c.valid; j < upto; j++) c.slot_of[j] = j;
  c.valid = upto;
}

size_t ColumnStore::landed_prefix(size_t from) const {
  const size_t na = active_.size();
  while (from < na) {
    const int32_t r = req_of_[from];
    if (r >= 0 && left_[r].load(std::memory_order_acquire) != 0) break;
    from++;
  }
  return from;
}

void ColumnStore::compute(const FlashExtent& e, int li, size_t c0, size_t c1, const float* x, int n, size_t stride,
                          float* const* ys, const int64_t* ldys, ThreadPool& pool) {
  const size_t nc = c1 - c0;
  if (nc == 0) return;
  const double t0 = Now();
  const int64_t block = af_type_block_elems(e.type);
  a_.resize(static_cast<size_t>(n) * nc);
  for (int b = 0; b < n; b++) {
    for (size_t i = 0; i < nc; i++) a_[b * nc + i] = x[b * stride + active_[c0 + i]];
  }
  cols_.resize(nc);
  for (int t = 0; t < e.tensors; t++) {
    const FlashPart& part = e.parts[static_cast<size_t>(li) * e.tensors + t];
    for (size_t i = 0; i < nc; i++) cols_[i] = records_[c0 + i] + part.offset;
    float* y = ys[t];
    const int64_t ldy = ldys[t];
    pool.run([&](int ith, int nth) {
      int64_t e0, e1;
      SplitRange(part.n_out, ith, nth, std::max<int64_t>(block, 32), &e0, &e1);
      if (e0 >= e1) return;
      if (n == 1) {
        af_col_axpy(e.type, cols_.data(), a_.data(), static_cast<int64_t>(nc), y, e0, e1);
      } else {
        af_col_axpy_batch(e.type, cols_.data(), a_.data(), static_cast<int64_t>(nc), n, y, ldy, e0, e1);
      }
    });
  }
  stats_.compute_s += Now() - t0;
}

void ColumnStore::linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
                         const int64_t* ldys, ThreadPool& pool) {
  const int g = layer / group_size_;
  const size_t ei = static_cast<size_t>(g) * kSites + site;
  const FlashExtent& e = extents_[ei];
  ExtentSlots& c = cache_.slots(ei);
  CachePolicy& policy = cache_.policy();
  const int li = layer - e.first_layer;
  const uint64_t visit = ++visit_;
  // A pinned prefix, or a cache that holds the whole extent, is read in one span at the
  // extent's first visit: long reads instead of one per miss.
  if (c.cap > 0 && c.valid < c.cap && (policy.pins_prefix() || c.cap >= c.n_in)) {
    if (!policy.pins_prefix()) {
      // A dynamic policy whose slots cover the extent: slot j holds channel j, nothing evicts.
      c.used = c.cap;
      for (int32_t s = 0; s < c.cap; s++) c.chan_of[s] = s;
    }
    fill_prefix(ei, c.cap);
  }
  // The group's preload buffer: wait for its reads; without a preload, claim it so records
  // loaded on demand serve the group's later layers too (a record holds all of them).
  GroupBuf* gb = nullptr;
  if (preloading()) {
    gb = &bufs_[g % 2];
    if (gb->group == g) wait_preload(*gb);
    else claim(g);
  }

  // Active channels: nonzero in any of the n inputs, ascending.
  active_.clear();
  for (int64_t j = 0; j < e.n_in; j++) {
    for (int t = 0; t < n; t++) {
      if (x[t * stride + j] != 0.0f) {
        active_.push_back(static_cast<int32_t>(j));
        break;
      }
    }
  }
  const size_t na = active_.size();
  records_.assign(na, nullptr);
  req_of_.assign(na, -1);
  stats_.lookups += na;
  stats_.active_bytes += static_cast<uint64_t>(na) * e.record_bytes;

  // Hits are pinned for this visit; the policy places misses in a slot (evicting a colder
  // channel) or not, else they land in the group's buffer or staging. A miss found in the
  // preload buffer is copied into the cache when the policy takes it.
  policy.begin_visit(ei, c, visit);
  for (size_t i = 0; i < na; i++) {
    const int32_t j = active_[i];
    const int32_t slot = c.slot_of[j];
    if (slot >= 0) {
      policy.hit(ei, c, j, slot);
      records_[i] = c.slot(slot);
      stats_.hits++;
    }
  }
  reqs_.clear();
  size_t staged = 0;
  for (size_t i = 0; i < na; i++) {
    if (records_[i]) continue;
    const int32_t j = active_[i];
    const uint8_t* pre = nullptr;
    if (gb && gb->off_of[site][j] >= 0) pre = gb->mem.data() + gb->off_of[site][j];
    const int32_t slot = policy.admit(ei, c, j);
    if (pre) {
      stats_.preload_hits++;
      stats_.active_preload_bytes += e.record_bytes;
    } else {
      stats_.demand_loads++;
      stats_.active_demand_bytes += e.record_bytes;
    }
    uint8_t* dst = nullptr;
    if (slot >= 0) {
      dst = c.slot(slot);
      if (pre) {
        std::memcpy(dst, pre, e.record_bytes);
        records_[i] = dst;
        continue;
      }
    } else if (pre) {
      records_[i] = pre;
      continue;
    } else if (gb) {
      dst = place(*gb, site, j, e.record_bytes);
    }
    if (!dst) {
      dst = staging_.data() + staged * e.record_bytes;
      staged++;
    }
    records_[i] = dst;
    req_of_[i] = static_cast<int32_t>(reqs_.size());
    reqs_.push_back({e.offset + static_cast<uint64_t>(j) * e.record_bytes, e.record_bytes, dst});
  }

  // Misses go out as one urgent batch; compute follows the landings in ascending channel
  // order, in chunks that end on a multiple of the kernels' column group (AF_COL_GROUP), so
  // the sums are those of one call over all channels.
  uint64_t ticket = 0;
  if (!reqs_.empty()) {
    if (left_cap_ < reqs_.size()) {
      left_cap_ = std::max(reqs_.size(), left_cap_ * 2);
      left_.reset(new std::atomic<int32_t>[left_cap_]);
    }
    for (size_t r = 0; r < reqs_.size(); r++) left_[r].store(1, std::memory_order_relaxed);
    LandingBoard board{left_.get(), reqs_.size(), &waker_};
    ticket = reader_->submit(reqs_, sums_, true, &board);
  }
  for (int t = 0; t < e.tensors; t++) {
    const FlashPart& part = e.parts[static_cast<size_t>(li) * e.tensors + t];
    for (int b = 0; b < n; b++) std::memset(ys[t] + b * ldys[t], 0, sizeof(float) * part.n_out);
  }
  size_t done = 0;
  double waited = 0;
  while (done < na) {
    size_t ready = ticket ? landed_prefix(done) : na;
    const size_t upto = ready == na ? na : ready / AF_COL_GROUP * AF_COL_GROUP;
    if (upto == na || upto >= done + kMinChunk) {
      compute(e, li, done, upto, x, n, stride, ys, ldys, pool);
      done = upto;
      continue;
    }
    // Too little to compute until more records land.
    const double t0 = Now();
    const size_t want = std::min(na, done + kMinChunk);
    auto short_of = [&] { return landed_prefix(ready) < want; };
    for (int spin = 0; spin < kLandingSpins && short_of(); spin++) AF_PAUSE();
    while (short_of()) {
      const uint32_t epoch = waker_.epoch();
      if (!short_of()) break;
      waker_.wait(epoch);
    }
    waited += Now() - t0;
  }
  if (ticket) {
    ReadStats rs = reader_->wait(ticket);  // rethrows a failed batch's error
    stats_.demand_wait_s += waited;
    stats_.io_wait_s += waited;
    stats_.demand_io_s += rs.io_seconds;
    stats_.bytes_read += rs.bytes_read;
    stats_.demand_bytes_read += rs.bytes_read;
    stats_.bytes_requested += rs.bytes_requested;
    stats_.device_reads += rs.device_reads;
  }
}

}  // namespace activeflow
