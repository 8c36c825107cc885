#include "model/expert_store.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "activeflow/col_kernels.h"
#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "model/model_error.h"

namespace activeflow {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ExpertStore::ExpertStore(std::vector<ExpertSpan> spans, int per_layer, int min_slots, std::shared_ptr<Reader> reader,
                         const PageChecksums* sums, size_t pool_bytes)
    : spans_(std::move(spans)), per_layer_(per_layer), min_slots_(std::max(1, min_slots)), reader_(std::move(reader)), sums_(sums) {
  for (const auto& s : spans_) slot_bytes_ = std::max<size_t>(slot_bytes_, s.bytes);
  slot_of_.assign(spans_.size(), -1);
  count_.assign(spans_.size(), 0);
  set_pool_bytes(pool_bytes);
}

ExpertStore::~ExpertStore() { drain(); }

void ExpertStore::set_pool_bytes(size_t bytes) {
  drain();
  // More slots than experts would never be used.
  const size_t want = std::min(std::max<size_t>(min_slots_, slot_bytes_ ? bytes / slot_bytes_ : 0), spans_.size());
  while (slots_.size() > want) {
    if (slots_.back().key >= 0) slot_of_[slots_.back().key] = -1;
    if (slots_.back().ahead) ahead_--;
    slots_.pop_back();
  }
  while (slots_.size() < want) {
    slots_.emplace_back();
    slots_.back().mem = AlignedBuffer(slot_bytes_);
  }
}

int ExpertStore::cached_experts() const {
  int n = 0;
  for (const auto& s : slots_) n += s.key >= 0;
  return n;
}

void ExpertStore::reset_counts() { std::fill(count_.begin(), count_.end(), 0); }

void ExpertStore::settle(Slot& s) {
  if (!s.ticket) return;
  const uint64_t t = s.ticket;
  s.ticket = 0;
  try {
    reader_->wait(t);
  } catch (...) {
    // A failed read leaves nothing usable in the slot.
    if (s.key >= 0) slot_of_[s.key] = -1;
    s.key = -1;
    throw;
  }
}

void ExpertStore::drain() {
  for (auto& s : slots_) {
    try {
      settle(s);
    } catch (...) {
    }
    s.pinned = false;
  }
}

// The slot to (re)fill: an empty one, else the unpinned expert selected least often this
// sequence (then the least recently used). A prefetch never takes a slot whose read is in
// flight or whose expert pre-gating brought in and nobody has used yet; a demand read takes
// one only when nothing else is left (reusing it waits for its read to land).
// Once pre-gating holds min_slots_ slots of its own (the spare set the plan reserves for it), it
// reads only into those; an expert a layer then uses leaves the set for the LFU pool (as a
// demand read would have brought it in), so only its mispredictions are recycled. Letting every
// prediction evict an LFU-cached expert cost more than it hid where the pool already hit 85 %
// (moe-ufs40-olmoe-sampled-2026-12-03T20-21-40Z: demand reads 18.9 -> 25 per token), since the
// predicted experts it can read there are mostly the wrong ones.
int ExpertStore::victim(bool for_prefetch) {
  const bool own_only = for_prefetch && ahead_ >= min_slots_;
  int best = -1;
  for (int pass = 0; pass < 2 && best < 0; pass++) {
    for (int i = 0; i < static_cast<int>(slots_.size()); i++) {
      const Slot& s = slots_[i];
      if (s.pinned) continue;
      if (s.key < 0) return i;
      if (own_only && !s.ahead) continue;
      // Its own slots' unused reads were issued a layer or more ago: reuse waits for them (load).
      const bool busy = s.prefetched || (s.ticket && !(own_only && s.ahead));
      if ((for_prefetch || pass == 0) && busy) continue;
      if (best < 0) {
        best = i;
        continue;
      }
      const Slot& b = slots_[best];
      const uint32_t cs = count_[s.key], cb = count_[b.key];
      if (cs < cb || (cs == cb && s.last_use < b.last_use)) best = i;
    }
    if (for_prefetch) break;
  }
  return best;
}

void ExpertStore::load(int s, int key, bool urgent) {
  Slot& slot = slots_[s];
  settle(slot);  // an unused prefetch may still be landing in it
  if (slot.key >= 0) slot_of_[slot.key] = -1;
  const ExpertSpan& e = spans_[key];
  const uint32_t max_read = reader_->options().max_read;
  std::vector<ReadReq> reqs;
  reqs.reserve(e.bytes / max_read + 1);
  for (uint64_t o = 0; o < e.bytes; o += max_read) {
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(max_read, e.bytes - o));
    reqs.push_back({e.offset + o, len, slot.mem.data() + o});
  }
  slot.ticket = reader_->submit(std::move(reqs), sums_, urgent, nullptr, true);
  slot.key = key;
  slot.prefetched = !urgent;
  if (slot.ahead == urgent) {
    slot.ahead = !urgent;  // a demand read takes the slot back for the LFU pool
    ahead_ += urgent ? -1 : 1;
  }
  slot_of_[key] = s;
  stats_.bytes_read += e.bytes;
  (urgent ? stats_.reads : stats_.prefetches)++;
}

int ExpertStore::acquire(int layer, int expert, bool count) {
  const int key = layer * per_layer_ + expert;
  stats_.lookups++;
  if (count) count_[key]++;
  int s = slot_of_[key];
  if (s >= 0) {
    Slot& slot = slots_[s];
    stats_.hits++;
    if (slot.prefetched) stats_.prefetch_hits++;
    slot.prefetched = false;
    if (slot.ahead) {
      slot.ahead = false;
      ahead_--;
    }
    if (slot.ticket) reader_->promote(slot.ticket);
  } else {
    s = victim(false);
    if (s < 0) throw ModelError("NATIVE", "expert pool: every slot is pinned (" + std::to_string(slots_.size()) + " slots)");
    load(s, key, true);
    slots_[s].prefetched = false;
  }
  slots_[s].pinned = true;
  slots_[s].last_use = ++clock_;
  return s;
}

const uint8_t* ExpertStore::wait(int s) {
  Slot& slot = slots_[s];
  if (slot.ticket) {
    const double t0 = Now();
    settle(slot);
    stats_.wait_s += Now() - t0;
  }
  return slot.mem.data();
}

void ExpertStore::release_all() {
  for (auto& s : slots_) s.pinned = false;
}

void ExpertStore::routed(int layer) {
  for (auto& s : slots_) {
    if (s.key >= 0 && s.key / per_layer_ == layer) s.prefetched = false;
  }
}

bool ExpertStore::prefetch(int layer, int expert) {
  // Only with a spare slot for every one the computing layer pins: the plan reserves them or
  // none (splitCache), and run --json reports pre-gating off below this, so a pool that lost
  // slots to setDramBudget does not read ahead into the few left either.
  if (slots_.size() < 2 * static_cast<size_t>(min_slots_)) return false;
  const int key = layer * per_layer_ + expert;
  if (slot_of_[key] >= 0) return false;
  const int s = victim(true);
  if (s < 0) return false;
  load(s, key, false);
  slots_[s].last_use = ++clock_;
  return true;
}

void ExpertLinear(const ExpertSpan& e, const uint8_t* base, bool in, const float* x, int n, float* const* ys, int64_t ldy,
                  ThreadPool& pool) {
  const int64_t n_in = in ? e.n_in : e.n_ff;
  const uint8_t* rec0 = in ? base : base + e.out_offset;
  const uint32_t rec = in ? e.rec_in : e.rec_out;
  const ExpertPart* parts[2] = {in ? &e.gate : &e.down, in ? &e.up : nullptr};
  std::vector<const void*> cols(static_cast<size_t>(n_in));
  std::vector<int32_t> ch;
  for (int k = 0; k < 2 && parts[k]; k++) {
    const ExpertPart& p = *parts[k];
    for (int64_t j = 0; j < n_in; j++) cols[j] = rec0 + j * rec + p.offset;
    if (p.scales >= 0 && ch.empty()) {
      ch.resize(static_cast<size_t>(n_in));
      for (int64_t j = 0; j < n_in; j++) ch[j] = static_cast<int32_t>(j);
    }
    float* y = ys[k];
    for (int b = 0; b < n; b++) std::memset(y + b * ldy, 0, sizeof(float) * p.n_out);
    const int64_t block = std::max<int64_t>(af_type_block_elems(p.type), 32);
    pool.run([&](int ith, int nth) {
      int64_t e0, e1;
      SplitRange(p.n_out, ith, nth, block, &e0, &e1);
      if (e0 >= e1) return;
      if (p.scales >= 0) {
        const uint8_t* sc = base + p.scales;
        if (n == 1) af_colx_axpy(p.type, cols.data(), ch.data(), x, n_in, sc, p.n_out, y, e0, e1);
        else af_colx_axpy_batch(p.type, cols.data(), ch.data(), x, n_in, n, sc, p.n_out, y, ldy, e0, e1);
      } else if (n == 1) {
        af_col_axpy(p.type, cols.data(), x, n_in, y, e0, e1);
      } else {
        af_col_axpy_batch(p.type, cols.data(), x, n_in, n, y, ldy, e0, e1);
      }
    });
  }
}

}  // namespace activeflow
