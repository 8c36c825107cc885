#include "model/column_store.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "activeflow/col_kernels.h"
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

size_t ColumnStore::resident_bytes() const { return cache_mem_.size() + staging_.size(); }

void ColumnStore::set_cache_bytes(size_t bytes) {
  cache_bytes_ = bytes;
  plan_cache();
}

void ColumnStore::reset_counts() {
  for (auto& c : caches_) std::fill(c.count.begin(), c.count.end(), 0);
}

// Splits the cache over extents in proportion to their size: every site of every layer gets
// the same fraction of its channels.
void ColumnStore::plan_cache() {
  cache_mem_ = AlignedBuffer();  // free first, so shrinking never holds both
  uint64_t total = 0;
  for (const auto& e : extents_) total += static_cast<uint64_t>(e.n_in) * e.record_bytes;
  const double frac = total > 0 ? std::min(1.0, static_cast<double>(cache_bytes_) / total) : 0.0;
  size_t bytes = 0;
  std::vector<int32_t> caps(extents_.size());
  for (size_t i = 0; i < extents_.size(); i++) {
    caps[i] = static_cast<int32_t>(frac * extents_[i].n_in);
    bytes += static_cast<size_t>(caps[i]) * extents_[i].record_bytes;
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

void ColumnStore::linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
                         const int64_t* ldys, ThreadPool& pool) {
  const int g = layer / group_size_;
  const size_t ei = static_cast<size_t>(g) * kSites + site;
  const FlashExtent& e = extents_[ei];
  Cache& c = caches_[ei];
  const int li = layer - e.first_layer;
  const uint64_t visit = ++visit_;

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

  // Hits are pinned for this visit; misses go to a free slot, replace a colder cached
  // channel (LFU: only if the newcomer's count is higher), or land in staging.
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
    uint8_t* dst;
    if (slot >= 0) {
      c.chan_of[slot] = j;
      c.slot_of[j] = slot;
      c.stamp[slot] = visit;
      dst = c.mem + static_cast<size_t>(slot) * e.record_bytes;
    } else {
      dst = staging_.data() + staged * e.record_bytes;
      staged++;
    }
    records_[i] = dst;
    reqs_.push_back({e.offset + static_cast<uint64_t>(j) * e.record_bytes, e.record_bytes, dst});
  }
  if (!reqs_.empty()) {
    const double t0 = Now();
    ReadStats rs = reader_->read(reqs_.data(), reqs_.size(), sums_);
    stats_.io_wait_s += Now() - t0;
    stats_.bytes_read += rs.bytes_read;
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
