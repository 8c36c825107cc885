#include "model/column_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "activeflow/col_kernels.h"
#include "activeflow/colx_kernels.h"
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
  // Misses of one visit land in reads of whole pages: at most the extent plus a page at each end.
  staging_ = AlignedBuffer(largest + 2 * kIoAlign);
  cache_.resize(cache_bytes);
}

size_t ColumnStore::resident_bytes() const {
  return cache_.allocated() + staging_.size() + bufs_[0].mem.size() + bufs_[1].mem.size() + site_bufs_[0].mem.size() +
         site_bufs_[1].mem.size();
}

void ColumnStore::set_cache_bytes(size_t bytes) { cache_.resize(bytes); }

void ColumnStore::reset_counts() { cache_.policy().reset_sequence(); }

ColumnStore::~ColumnStore() { drain(); }

void ColumnStore::drain() {
  for (auto& b : site_bufs_) {
    if (!b.ticket) continue;
    try {
      reader_->wait(b.ticket);
    } catch (...) {
    }
    b.ticket = 0;
    b.layer = -1;
  }
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
  preload_bytes_ = bytes < 2 * 4096 ? 0 : bytes;
  // Groups of one layer prefetch per site; larger groups keep a buffer per group.
  for (auto& b : bufs_) b = GroupBuf();  // frees the old memory first
  for (auto& b : site_bufs_) b = SiteBuf();
  if (preload_bytes_ == 0) return;
  if (group_size_ == 1) {
    for (auto& b : site_bufs_) b.mem = AlignedBuffer(preload_bytes_ / 2);
  } else {
    for (auto& b : bufs_) b.mem = AlignedBuffer(preload_bytes_ / 2);
  }
}

bool ColumnStore::cached(int group, int site, int32_t channel) const {
  const size_t ei = static_cast<size_t>(group) * kSites + site;
  return const_cast<HotCache&>(cache_).slots(ei).slot_of[extents_[ei].record(channel)] >= 0;
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
    reqs.push_back({e.offset + static_cast<uint64_t>(e.record(cd.channel)) * e.record_bytes, e.record_bytes, dst});
  }
  stats_.preload_records += reqs.size();
  if (reqs.empty()) return;
  b.submitted = Now();
  b.ticket = reader_->submit(std::move(reqs), sums_, false);
}

void ColumnStore::collect(SiteBuf& b) {
  if (!b.ticket) return;
  ReadStats rs;
  const double t0 = Now();
  try {
    rs = reader_->wait(b.ticket);
  } catch (...) {
    b.ticket = 0;
    b.layer = -1;
    throw;
  }
  b.ticket = 0;
  stats_.preload_wait_s += Now() - t0;
  stats_.preload_io_s += rs.io_seconds;
  stats_.bytes_read += rs.bytes_read;
  stats_.preload_bytes_read += rs.bytes_read;
  stats_.bytes_requested += rs.bytes_requested;
  stats_.device_reads += rs.device_reads;
}

void ColumnStore::settle() {
  for (auto& b : site_bufs_) collect(b);
}

ColumnStore::SiteBuf& ColumnStore::claim_site(int layer, int site, const SiteBuf* busy) {
  SiteBuf* pick;
  if (busy) {
    pick = busy == &site_bufs_[0] ? &site_bufs_[1] : &site_bufs_[0];
  } else {
    pick = &site_bufs_[next_site_buf_];
    next_site_buf_ ^= 1;
  }
  SiteBuf& b = *pick;
  collect(b);
  const size_t n_in = static_cast<size_t>(extents_[static_cast<size_t>(layer) * kSites + site].n_in);
  if (b.off_of.size() != n_in) {
    b.off_of.assign(n_in, -1);
    b.req_of.assign(n_in, -1);
    b.req2_of.assign(n_in, -1);
  } else {
    for (int32_t j : b.placed) {
      b.off_of[j] = -1;
      b.req2_of[j] = -1;
    }
  }
  b.placed.clear();
  b.used = 0;
  b.layer = layer;
  b.site = site;
  return b;
}

void ColumnStore::stage_site(SiteBuf& b, const FlashExtent& e, const std::vector<int32_t>& channels) {
  plan_reqs_.clear();
  for (int32_t j : channels) {
    plan_reqs_.push_back({e.offset + static_cast<uint64_t>(e.record(j)) * e.record_bytes, e.record_bytes, b.mem.data()});
  }
  if (plan_reqs_.empty()) return;
  size_t fit = 0;
  const ReadPlan plan = plan_in_place(b.mem.size(), &fit);
  if (fit == 0) return;
  std::vector<ReadReq> reqs;
  reqs.reserve(fit);
  for (size_t k = 0; k < fit; k++) {
    const DeviceRead& r = plan.reads[k];
    reqs.push_back({r.offset, r.length, b.mem.data() + read_at_[k]});
    for (uint32_t p = r.first_piece; p < r.first_piece + r.n_pieces; p++) {
      const Piece& pc = plan.pieces[p];
      const int32_t j = channels[pc.req];
      if (pc.dst == plan_reqs_[pc.req].dst) {  // the record's first piece
        b.off_of[j] = static_cast<int64_t>(read_at_[k] + pc.read_offset);
        b.req_of[j] = static_cast<int32_t>(k);
        b.placed.push_back(j);
      } else {
        b.req2_of[j] = static_cast<int32_t>(k);
      }
    }
  }
  // A record whose second piece did not fit is read on demand instead.
  if (fit < plan.reads.size()) {
    const DeviceRead& r = plan.reads[fit];
    for (uint32_t p = r.first_piece; p < r.first_piece + r.n_pieces; p++) {
      const Piece& pc = plan.pieces[p];
      if (pc.dst != plan_reqs_[pc.req].dst) b.off_of[channels[pc.req]] = -1;
    }
  }
  b.used = read_at_[fit - 1] + plan.reads[fit - 1].length;
  stats_.preload_records += b.placed.size();
  if (b.left_cap < fit) {
    b.left_cap = std::max(fit, b.left_cap * 2);
    b.left.reset(new std::atomic<int32_t>[b.left_cap]);
    b.gate.reset(new std::atomic<uint8_t>[b.left_cap]);
  }
  for (size_t k = 0; k < fit; k++) {
    b.left[k].store(1, std::memory_order_relaxed);
    b.gate[k].store(kGateOpen, std::memory_order_relaxed);
  }
  b.reads = fit;
  LandingBoard board{b.left.get(), fit, &waker_, b.gate.get()};
  b.ticket = reader_->submit(std::move(reqs), sums_, false, &board, /*as_planned=*/true);
}

void ColumnStore::withdraw(SiteBuf& b) {
  if (!b.ticket) return;
  size_t withdrawn = 0;
  for (size_t k = 0; k < b.reads; k++) {
    uint8_t open = kGateOpen;
    if (b.gate[k].compare_exchange_strong(open, kGateWithdrawn, std::memory_order_acq_rel)) withdrawn++;
  }
  stats_.reads_withdrawn += withdrawn;
  if (withdrawn == 0) return;
  auto gone = [&](int32_t k) { return k >= 0 && b.gate[k].load(std::memory_order_relaxed) == kGateWithdrawn; };
  for (int32_t j : b.placed) {
    if (b.off_of[j] >= 0 && (gone(b.req_of[j]) || gone(b.req2_of[j]))) b.off_of[j] = -1;
  }
}

void ColumnStore::prefetch_site(int layer, int site, const float* score, float margin) {
  if (!preloading() || group_size_ != 1) return;
  const size_t ei = static_cast<size_t>(layer) * kSites + site;
  if (ei >= extents_.size()) return;
  const FlashExtent& e = extents_[ei];
  const ExtentSlots& c = cache_.slots(ei);
  SiteBuf& b = claim_site(layer, site, nullptr);
  // Best predicted first while the records' bytes fit the buffer; cached channels need no
  // read. Then in file order, as the device reads them.
  cands_.clear();
  for (int64_t j = 0; j < e.n_in; j++) {
    if (score[j] > margin && c.slot_of[e.record(static_cast<int32_t>(j))] < 0) cands_.push_back({score[j], site, static_cast<int32_t>(j)});
  }
  std::stable_sort(cands_.begin(), cands_.end(), [](const Candidate& a, const Candidate& d) { return a.score > d.score; });
  const size_t room = b.mem.size() / e.record_bytes;
  stage_channels_.clear();
  for (size_t i = 0; i < cands_.size() && i < room; i++) stage_channels_.push_back(cands_[i].channel);
  std::sort(stage_channels_.begin(), stage_channels_.end(), [&](int32_t a, int32_t d) { return e.record(a) < e.record(d); });
  stage_site(b, e, stage_channels_);
}

void ColumnStore::read_ahead(size_t ei, const SiteBuf* busy) {
  if (ei >= extents_.size()) return;
  const FlashExtent& e = extents_[ei];
  const ExtentSlots& c = cache_.slots(ei);
  SiteBuf& b = claim_site(e.first_layer, e.site, busy);
  stage_channels_.clear();
  for (int32_t j = 0; j < e.n_in; j++) {
    if (c.slot_of[e.record(j)] < 0) stage_channels_.push_back(j);
  }
  if (!e.record_of.empty()) {
    std::sort(stage_channels_.begin(), stage_channels_.end(), [&](int32_t a, int32_t d) { return e.record(a) < e.record(d); });
  }
  stage_site(b, e, stage_channels_);
}

void ColumnStore::fill_pinned(size_t ei) {
  ExtentSlots& c = cache_.slots(ei);
  const FlashExtent& e = extents_[ei];
  if (c.cap <= c.valid) return;
  // Runs of consecutive records (slots hold ascending records), each one request; ReadReq
  // lengths are 32-bit, so a run is cut at 1 GiB (extents are far smaller in practice).
  std::vector<ReadReq> reqs;
  const int32_t per = static_cast<int32_t>(std::max<uint64_t>(1, (uint64_t{1} << 30) / e.record_bytes));
  for (int32_t s = c.valid; s < c.cap;) {
    int32_t k = s + 1;
    while (k < c.cap && k - s < per && c.chan_of[k] == c.chan_of[k - 1] + 1) k++;
    reqs.push_back({e.offset + static_cast<uint64_t>(c.chan_of[s]) * e.record_bytes,
                    static_cast<uint32_t>(static_cast<uint64_t>(k - s) * e.record_bytes), c.slot(s)});
    s = k;
  }
  const double t0 = Now();
  ReadStats rs = reader_->read(reqs.data(), reqs.size(), sums_, true);
  stats_.io_wait_s += Now() - t0;
  stats_.bytes_read += rs.bytes_read;
  stats_.fill_bytes_read += rs.bytes_read;
  stats_.bytes_requested += rs.bytes_requested;
  stats_.device_reads += rs.device_reads;
  for (int32_t s = c.valid; s < c.cap; s++) c.slot_of[c.chan_of[s]] = s;
  c.valid = c.cap;
}

size_t ColumnStore::landed_prefix(size_t from) const {
  const size_t na = active_.size();
  while (from < na) {
    const std::atomic<int32_t>* w = wait_on_[from];
    if (w && w->load(std::memory_order_acquire) != 0) break;
    const std::atomic<int32_t>* w2 = wait_also_[from];
    if (w2 && w2->load(std::memory_order_acquire) != 0) break;
    from++;
  }
  return from;
}

ReadPlan ColumnStore::plan_in_place(size_t cap, size_t* fit) {
  const ReaderOptions& ro = reader_->options();
  MergeRule rule;
  rule.max_gap = ro.max_gap;
  if (!ro.cost.empty()) rule.cost = &ro.cost;
  ReadPlan plan = PlanReads(plan_reqs_.data(), plan_reqs_.size(), rule, ro.max_read, reader_->file().size());
  // Reads of one file run sit back to back, so a record split between two of them (at
  // max_read) stays contiguous.
  read_at_.clear();
  size_t at = 0;
  for (const DeviceRead& r : plan.reads) {
    if (at + r.length > cap) break;
    read_at_.push_back(at);
    at += r.length;
  }
  *fit = read_at_.size();
  return plan;
}

uint64_t ColumnStore::read_misses(const FlashExtent& e) {
  // The plan of the records, as the reader would merge them; then each device read is its
  // own aligned request into the arena, so the reader lands it in place and does not merge.
  plan_reqs_.clear();
  for (const Miss& m : miss_) {
    const int32_t r = e.record(active_[m.active]);
    plan_reqs_.push_back({e.offset + static_cast<uint64_t>(r) * e.record_bytes, e.record_bytes, staging_.data()});
  }
  size_t fit = 0;
  const ReadPlan plan = plan_in_place(staging_.size(), &fit);
  if (fit < plan.reads.size()) throw ModelError("NATIVE", "the read plan of a visit exceeds the staging arena");
  if (left_cap_ < plan.reads.size()) {
    left_cap_ = std::max(plan.reads.size(), left_cap_ * 2);
    left_.reset(new std::atomic<int32_t>[left_cap_]);
  }
  reqs_.clear();
  for (size_t k = 0; k < plan.reads.size(); k++) {
    const DeviceRead& r = plan.reads[k];
    reqs_.push_back({r.offset, r.length, staging_.data() + read_at_[k]});
    left_[k].store(1, std::memory_order_relaxed);
  }
  for (size_t k = 0; k < plan.reads.size(); k++) {
    const DeviceRead& r = plan.reads[k];
    for (uint32_t p = r.first_piece; p < r.first_piece + r.n_pieces; p++) {
      const Piece& pc = plan.pieces[p];
      const Miss& m = miss_[pc.req];
      uint8_t* where = staging_.data() + read_at_[k] + pc.read_offset;
      if (pc.dst == plan_reqs_[pc.req].dst) {  // the record's first piece
        records_[m.active] = where;
        wait_on_[m.active] = &left_[k];
        if (m.keep) copies_.push_back({m.keep, where});
      } else {
        wait_also_[m.active] = &left_[k];
      }
    }
  }
  LandingBoard board{left_.get(), reqs_.size(), &waker_};
  return reader_->submit(reqs_, sums_, true, &board, /*as_planned=*/true);
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
    const int32_t* ch = active_.data() + c0;
    pool.run([&](int ith, int nth) {
      int64_t e0, e1;
      SplitRange(part.n_out, ith, nth, std::max<int64_t>(block, 32), &e0, &e1);
      if (e0 >= e1) return;
      if (part.scales) {
        // Split columns: the source's codes with the part's resident scale plane.
        if (n == 1) af_colx_axpy(part.type, cols_.data(), ch, a_.data(), static_cast<int64_t>(nc), part.scales, part.n_out, y, e0, e1);
        else af_colx_axpy_batch(part.type, cols_.data(), ch, a_.data(), static_cast<int64_t>(nc), n, part.scales, part.n_out, y, ldy, e0, e1);
      } else if (n == 1) {
        af_col_axpy(e.type, cols_.data(), a_.data(), static_cast<int64_t>(nc), y, e0, e1);
      } else {
        af_col_axpy_batch(e.type, cols_.data(), a_.data(), static_cast<int64_t>(nc), n, y, ldy, e0, e1);
      }
    });
  }
  stats_.compute_s += Now() - t0;
}

size_t ColumnStore::chunk_end(const FlashExtent& e, size_t done, size_t ready) const {
  const size_t na = active_.size();
  if (ready == na) return na;
  // Requantised columns sum in groups of AF_COL_GROUP from the list's start; split columns in
  // runs of one block-column: a chunk may end only where every part's grouping ends.
  bool split = false, requant = false;
  for (const FlashPart& p : e.parts) (p.scales ? split : requant) = true;
  for (size_t b = ready; b > done; b--) {
    if (requant && b % AF_COL_GROUP != 0) continue;
    if (split && active_[b] / 32 == active_[b - 1] / 32) continue;
    return b;
  }
  return done;
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
  if (c.cap > 0 && c.valid < c.cap && (policy.pins() || c.cap >= c.n_in)) {
    if (!policy.pins()) {
      // A dynamic policy whose slots cover the extent: slot j holds record j, nothing evicts.
      c.used = c.cap;
      for (int32_t s = 0; s < c.cap; s++) c.chan_of[s] = s;
    }
    fill_pinned(ei);
  }
  // The group's preload buffer: wait for its reads; without a preload, claim it so records
  // loaded on demand serve the group's later layers too (a record holds all of them).
  GroupBuf* gb = nullptr;
  if (preloading() && group_size_ > 1) {
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
  wait_on_.assign(na, nullptr);
  wait_also_.assign(na, nullptr);
  // This visit's site prefetch, if one was made: it goes to the head of the read queue now.
  SiteBuf* sb = nullptr;
  for (auto& b : site_bufs_) {
    if (b.layer == layer && b.site == site) sb = &b;
  }
  if (sb && sb->ticket) {
    withdraw(*sb);
    reader_->promote(sb->ticket);
  }
  copies_.clear();
  stats_.lookups += na;
  stats_.site_lookups[site] += na;
  stats_.active_bytes += static_cast<uint64_t>(na) * e.record_bytes;

  // Hits are pinned for this visit; the policy places misses in a slot (evicting a colder
  // channel) or not, else they land in the group's buffer or staging. A miss found in the
  // preload buffer is copied into the cache when the policy takes it.
  policy.begin_visit(ei, c, visit);
  for (size_t i = 0; i < na; i++) {
    const int32_t r = e.record(active_[i]);
    const int32_t slot = c.slot_of[r];
    if (slot >= 0) {
      policy.hit(ei, c, r, slot);
      records_[i] = c.slot(slot);
      stats_.hits++;
      stats_.site_hits[site]++;
    }
  }
  // Misses: the prefetched ones are computed where they land; the rest are planned into
  // device reads here, which land in place in the staging arena (no copy on the loader's
  // core) and are computed there; a cache slot or group buffer the record also goes to gets
  // a copy after the compute.
  miss_.clear();
  for (size_t i = 0; i < na; i++) {
    if (records_[i]) continue;
    const int32_t j = active_[i];
    const int32_t slot = policy.admit(ei, c, e.record(j));
    if (sb && sb->off_of[j] >= 0) {
      records_[i] = sb->mem.data() + sb->off_of[j];
      if (sb->ticket) {
        wait_on_[i] = &sb->left[sb->req_of[j]];
        if (sb->req2_of[j] >= 0) wait_also_[i] = &sb->left[sb->req2_of[j]];
      }
      if (slot >= 0) copies_.push_back({c.slot(slot), records_[i]});
      stats_.preload_hits++;
      stats_.active_preload_bytes += e.record_bytes;
      continue;
    }
    const uint8_t* pre = gb && gb->off_of[site][j] >= 0 ? gb->mem.data() + gb->off_of[site][j] : nullptr;
    if (pre) {
      stats_.preload_hits++;
      stats_.active_preload_bytes += e.record_bytes;
      if (slot >= 0) {
        std::memcpy(c.slot(slot), pre, e.record_bytes);
        records_[i] = c.slot(slot);
      } else {
        records_[i] = pre;
      }
      continue;
    }
    stats_.demand_loads++;
    stats_.active_demand_bytes += e.record_bytes;
    uint8_t* keep = slot >= 0 ? c.slot(slot) : gb ? place(*gb, site, j, e.record_bytes) : nullptr;
    miss_.push_back({static_cast<int32_t>(i), keep});
  }
  uint64_t ticket = 0;
  if (!miss_.empty()) ticket = read_misses(e);
  // The next visit's reads queue behind this one's, so the device never idles while it computes.
  if (reading_ahead()) read_ahead(ei + 1, sb);
  for (int t = 0; t < e.tensors; t++) {
    const FlashPart& part = e.parts[static_cast<size_t>(li) * e.tensors + t];
    for (int b = 0; b < n; b++) std::memset(ys[t] + b * ldys[t], 0, sizeof(float) * part.n_out);
  }
  size_t done = 0;
  double waited = 0;
  while (done < na) {
    const size_t ready = landed_prefix(done);
    const size_t upto = chunk_end(e, done, ready);
    if (upto == na || upto >= done + kMinChunk) {
      compute(e, li, done, upto, x, n, stride, ys, ldys, pool);
      done = upto;
      continue;
    }
    // Too little to compute until more records land.
    const double t0 = Now();
    const size_t want = std::min(na, std::max(done + kMinChunk, ready + 1));
    auto short_of = [&] { return landed_prefix(ready) < want; };
    for (int spin = 0; spin < kLandingSpins && short_of(); spin++) AF_PAUSE();
    while (short_of()) {
      const uint32_t epoch = waker_.epoch();
      if (!short_of()) break;
      waker_.wait(epoch);
    }
    waited += Now() - t0;
  }
  for (const auto& cp : copies_) std::memcpy(cp.first, cp.second, e.record_bytes);
  stats_.io_wait_s += waited;
  if (!ticket) stats_.preload_wait_s += waited;
  if (ticket) {
    ReadStats rs = reader_->wait(ticket);  // rethrows a failed batch's error
    stats_.demand_wait_s += waited;
    stats_.demand_io_s += rs.io_seconds;
    stats_.bytes_read += rs.bytes_read;
    stats_.demand_bytes_read += rs.bytes_read;
    stats_.bytes_requested += static_cast<uint64_t>(miss_.size()) * e.record_bytes;
    stats_.device_reads += rs.device_reads;
  }
}

}  // namespace activeflow
