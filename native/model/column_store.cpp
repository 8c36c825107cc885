#include "model/column_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "activeflow/col_kernels.h"
#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "model/model.h"

namespace activeflow {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ColumnStore::ColumnStore(std::vector<FlashExtent> extents, int group_size, std::shared_ptr<Reader> reader,
                         const PageChecksums* sums, size_t cache_bytes)
    : extents_(std::move(extents)), group_size_(group_size), reader_(std::move(reader)), sums_(sums),
      cache_bytes_(cache_bytes) {
  size_t largest = 0;
  for (const auto& e : extents_) largest = std::max(largest, static_cast<size_t>(e.n_in) * e.record_bytes);
  staging_ = AlignedBuffer(largest);
  caches_.resize(extents_.size());
  plan_cache();
}

size_t ColumnStore::resident_bytes() const {
  return cache_mem_.size() + staging_.size() + bufs_[0].mem.size() + bufs_[1].mem.size();
}

void ColumnStore::set_cache_bytes(size_t bytes) {
  cache_bytes_ = bytes;
  plan_cache();
}

void ColumnStore::reset_counts() {
  for (auto& c : caches_) std::fill(c.count.begin(), c.count.end(), 0);
}

// Splits the cache over extents. Without preloading, in proportion to their size: every site
// of every layer gets the same fraction of its channels. Experiment (AF_CACHE_OFF_STREAM_FIRST=1,
// with preloading): o and down first, as their inputs are predicted worst; on the 7B at 50 %
// it raised the channel hit rate 0.41 -> 0.52 but not the share of active bytes from the
// cache (0.39 -> 0.33: their records are small), so it is not the default.
void ColumnStore::plan_cache() {
  cache_mem_ = AlignedBuffer();  // free first, so shrinking never holds both
  const bool first_off_stream = preload_bytes_ > 0 && std::getenv("AF_CACHE_OFF_STREAM_FIRST");
  uint64_t off = 0, on = 0;
  for (const auto& e : extents_) {
    const uint64_t b = static_cast<uint64_t>(e.n_in) * e.record_bytes;
    if (first_off_stream && (e.site == kAttnOut || e.site == kFfnOut)) off += b;
    else on += b;
  }
  double frac_off = 0, frac_on = 0;
  double left = static_cast<double>(cache_bytes_);
  if (off > 0) {
    frac_off = std::min(1.0, left / off);
    left -= frac_off * off;
  }
  if (on > 0) frac_on = std::min(1.0, std::max(0.0, left) / on);
  size_t bytes = 0;
  std::vector<int32_t> caps(extents_.size());
  for (size_t i = 0; i < extents_.size(); i++) {
    const FlashExtent& e = extents_[i];
    const double frac = first_off_stream && (e.site == kAttnOut || e.site == kFfnOut) ? frac_off : frac_on;
    caps[i] = static_cast<int32_t>(frac * e.n_in);
    bytes += static_cast<size_t>(caps[i]) * e.record_bytes;
  }
  if (bytes > 0) cache_mem_ = AlignedBuffer(bytes);
  size_t at = 0;
  for (size_t i = 0; i < extents_.size(); i++) {
    Cache& c = caches_[i];
    const FlashExtent& e = extents_[i];
    c.cap = caps[i];
    c.used = 0;
    c.slot_of.assign(e.n_in, -1);
    c.chan_of.assign(c.cap, -1);
    c.stamp.assign(c.cap, 0);
    c.count.resize(e.n_in, 0);
    c.mem = c.cap > 0 ? cache_mem_.data() + at : nullptr;
    at += static_cast<size_t>(c.cap) * e.record_bytes;
  }
}

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
  plan_cache();  // the split depends on whether we preload
}

bool ColumnStore::cached(int group, int site, int32_t channel) const {
  return caches_[static_cast<size_t>(group) * kSites + site].slot_of[channel] >= 0;
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

void ColumnStore::linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
                         const int64_t* ldys, ThreadPool& pool) {
  const int g = layer / group_size_;
  const size_t ei = static_cast<size_t>(g) * kSites + site;
  const FlashExtent& e = extents_[ei];
  Cache& c = caches_[ei];
  const int li = layer - e.first_layer;
  const uint64_t visit = ++visit_;
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
  stats_.lookups += na;
  stats_.active_bytes += static_cast<uint64_t>(na) * e.record_bytes;

  // Hits are pinned for this visit; misses go to a free slot, replace a colder cached
  // channel (LFU: only if the newcomer's count is higher), or land in the group's buffer or
  // staging. A miss found in the preload buffer is copied into the cache when LFU takes it.
  reqs_.clear();
  size_t staged = 0;
  bool victims_ready = false;
  size_t next_victim = 0;
  for (size_t i = 0; i < na; i++) {
    const int32_t j = active_[i];
    c.count[j]++;
    const int32_t slot = c.slot_of[j];
    if (slot >= 0) {
      c.stamp[slot] = visit;
      records_[i] = c.mem + static_cast<size_t>(slot) * e.record_bytes;
      stats_.hits++;
    }
  }
  for (size_t i = 0; i < na; i++) {
    if (records_[i]) continue;
    const int32_t j = active_[i];
    const uint8_t* pre = nullptr;
    if (gb && gb->off_of[site][j] >= 0) pre = gb->mem.data() + gb->off_of[site][j];
    int32_t slot = -1;
    if (c.used < c.cap) {
      slot = c.used++;
    } else if (c.cap > 0) {
      if (!victims_ready) {
        victims_.clear();
        for (int32_t s = 0; s < c.cap; s++) {
          if (c.stamp[s] != visit) victims_.push_back(s);
        }
        std::sort(victims_.begin(), victims_.end(), [&](int32_t a, int32_t b) {
          const uint32_t ca = c.count[c.chan_of[a]], cb = c.count[c.chan_of[b]];
          return ca != cb ? ca < cb : a < b;
        });
        victims_ready = true;
      }
      if (next_victim < victims_.size() && c.count[c.chan_of[victims_[next_victim]]] < c.count[j]) {
        slot = victims_[next_victim++];
        c.slot_of[c.chan_of[slot]] = -1;
      }
    }
    if (pre) {
      stats_.preload_hits++;
      stats_.active_preload_bytes += e.record_bytes;
    } else {
      stats_.demand_loads++;
      stats_.active_demand_bytes += e.record_bytes;
    }
    uint8_t* dst = nullptr;
    if (slot >= 0) {
      c.chan_of[slot] = j;
      c.slot_of[j] = slot;
      c.stamp[slot] = visit;
      dst = c.mem + static_cast<size_t>(slot) * e.record_bytes;
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
    reqs_.push_back({e.offset + static_cast<uint64_t>(j) * e.record_bytes, e.record_bytes, dst});
  }
  if (!reqs_.empty()) {
    const double t0 = Now();
    ReadStats rs = reader_->read(reqs_.data(), reqs_.size(), sums_, true);
    const double dt = Now() - t0;
    stats_.io_wait_s += dt;
    stats_.demand_wait_s += dt;
    stats_.bytes_read += rs.bytes_read;
    stats_.demand_bytes_read += rs.bytes_read;
    stats_.bytes_requested += rs.bytes_requested;
    stats_.device_reads += rs.device_reads;
  }

  // y_t = sum over active j (ascending) of x_j * column_j of (layer, tensor t).
  const double t1 = Now();
  for (int t = 0; t < e.tensors; t++) {
    const FlashPart& part = e.parts[static_cast<size_t>(li) * e.tensors + t];
    cols_.resize(na);
    for (size_t i = 0; i < na; i++) cols_[i] = records_[i] + part.offset;
    a_.resize(static_cast<size_t>(n) * na);
    for (int b = 0; b < n; b++) {
      for (size_t i = 0; i < na; i++) a_[b * na + i] = x[b * stride + active_[i]];
    }
    float* y = ys[t];
    const int64_t ldy = ldys[t];
    for (int b = 0; b < n; b++) std::memset(y + b * ldy, 0, sizeof(float) * part.n_out);
    if (na == 0) continue;
    if (part.scales) {
      // Split columns: the source's codes, with the part's resident scale plane.
      pool.run([&](int ith, int nth) {
        int64_t e0, e1;
        SplitRange(part.n_out, ith, nth, 64, &e0, &e1);
        if (e0 >= e1) return;
        if (n == 1) {
          af_colx_axpy(part.type, cols_.data(), active_.data(), a_.data(), static_cast<int64_t>(na), part.scales,
                       part.n_out, y, e0, e1);
        } else {
          af_colx_axpy_batch(part.type, cols_.data(), active_.data(), a_.data(), static_cast<int64_t>(na), n,
                             part.scales, part.n_out, y, ldy, e0, e1);
        }
      });
      continue;
    }
    const int64_t block = af_type_block_elems(e.type);
    pool.run([&](int ith, int nth) {
      int64_t e0, e1;
      SplitRange(part.n_out, ith, nth, std::max<int64_t>(block, 32), &e0, &e1);
      if (e0 >= e1) return;
      if (n == 1) {
        af_col_axpy(e.type, cols_.data(), a_.data(), static_cast<int64_t>(na), y, e0, e1);
      } else {
        af_col_axpy_batch(e.type, cols_.data(), a_.data(), static_cast<int64_t>(na), n, y, ldy, e0, e1);
      }
    });
  }
  stats_.compute_s += Now() - t1;
}

}  // namespace activeflow
