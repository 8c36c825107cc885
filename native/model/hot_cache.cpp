#include "model/hot_cache.h"

#include <algorithm>
#include <cstring>

#include "model/column_store.h"
#include "model/model.h"

namespace activeflow {

namespace {

// Frequency counting as the paper's policy: counts restart per sequence; a missed channel
// takes the slot of the least-used channel not used in this visit, only if its own count is
// higher. Free slots are taken first.
class LfuPolicy final : public CachePolicy {
 public:
  CachePolicyKind kind() const override { return CachePolicyKind::kLfu; }
  void plan(const std::vector<ExtentSlots>& slots) override {
    ext_.resize(slots.size());
    for (size_t i = 0; i < slots.size(); i++) {
      ext_[i].count.resize(static_cast<size_t>(slots[i].n_in), 0);
      ext_[i].stamp.assign(static_cast<size_t>(slots[i].cap), 0);
    }
  }
  void begin_visit(size_t e, ExtentSlots&, uint64_t visit) override {
    ext_[e].visit = visit;
    ext_[e].victims_ready = false;
  }
  void hit(size_t e, ExtentSlots&, int32_t channel, int32_t slot) override {
    Ext& x = ext_[e];
    x.count[channel]++;
    x.stamp[slot] = x.visit;
  }
  int32_t admit(size_t e, ExtentSlots& c, int32_t channel) override {
    Ext& x = ext_[e];
    x.count[channel]++;
    int32_t slot = -1;
    if (c.used < c.cap) {
      slot = c.used++;
    } else if (c.cap > 0) {
      if (!x.victims_ready) {
        x.victims.clear();
        for (int32_t s = 0; s < c.cap; s++) {
          if (x.stamp[s] != x.visit) x.victims.push_back(s);
        }
        std::sort(x.victims.begin(), x.victims.end(), [&](int32_t a, int32_t b) {
          const uint32_t ca = x.count[c.chan_of[a]], cb = x.count[c.chan_of[b]];
          return ca != cb ? ca < cb : a < b;
        });
        x.next = 0;
        x.victims_ready = true;
      }
      if (x.next < x.victims.size() && x.count[c.chan_of[x.victims[x.next]]] < x.count[channel]) {
        slot = x.victims[x.next++];
        c.slot_of[c.chan_of[slot]] = -1;
      }
    }
    if (slot >= 0) {
      c.chan_of[slot] = channel;
      c.slot_of[channel] = slot;
      x.stamp[slot] = x.visit;
    }
    return slot;
  }
  void reset_sequence() override {
    for (Ext& x : ext_) std::fill(x.count.begin(), x.count.end(), 0);
  }

 private:
  struct Ext {
    std::vector<uint32_t> count;  // [n_in] uses in this sequence
    std::vector<uint64_t> stamp;  // [cap] visit that last used the slot (pinned in that visit)
    std::vector<int32_t> victims; // slots not used in this visit, coldest first
    size_t next = 0;
    bool victims_ready = false;
    uint64_t visit = 0;
  };
  std::vector<Ext> ext_;
};

// A fixed set: the first cap records of the extent in file order (the hottest ones when the
// layout is ordered by calibration frequency), read in one span at the extent's first visit.
// The records left out form one contiguous run of the extent, so misses coalesce into long
// reads. Nothing is evicted.
class PrefixPolicy final : public CachePolicy {
 public:
  CachePolicyKind kind() const override { return CachePolicyKind::kPrefix; }
  void plan(const std::vector<ExtentSlots>&) override {}
  void begin_visit(size_t, ExtentSlots&, uint64_t) override {}
  void hit(size_t, ExtentSlots&, int32_t, int32_t) override {}
  int32_t admit(size_t, ExtentSlots&, int32_t) override { return -1; }
  bool pins_prefix() const override { return true; }
};

// A fixed set pinned from calibration: HotCache picks the records (hot_sets) from the
// frequencies the file carries; nothing is admitted or evicted after the first visit.
class StaticPolicy final : public CachePolicy {
 public:
  CachePolicyKind kind() const override { return CachePolicyKind::kStatic; }
  void plan(const std::vector<ExtentSlots>&) override {}
  void begin_visit(size_t, ExtentSlots&, uint64_t) override {}
  void hit(size_t, ExtentSlots&, int32_t, int32_t) override {}
  int32_t admit(size_t, ExtentSlots&, int32_t) override { return -1; }
  bool pins_hot_set() const override { return true; }
};

}  // namespace

CachePolicyKind ParseCachePolicy(const std::string& name) {
  if (name == "lfu") return CachePolicyKind::kLfu;
  if (name == "prefix") return CachePolicyKind::kPrefix;
  if (name == "static") return CachePolicyKind::kStatic;
  throw ModelError("BAD_ARGUMENT", "cache policy \"" + name + "\" is not one of lfu, prefix, static");
}

const char* CachePolicyName(CachePolicyKind kind) {
  switch (kind) {
    case CachePolicyKind::kPrefix: return "prefix";
    case CachePolicyKind::kStatic: return "static";
    default: return "lfu";
  }
}

std::unique_ptr<CachePolicy> MakeCachePolicy(CachePolicyKind kind) {
  if (kind == CachePolicyKind::kPrefix) return std::make_unique<PrefixPolicy>();
  if (kind == CachePolicyKind::kStatic) return std::make_unique<StaticPolicy>();
  return std::make_unique<LfuPolicy>();
}

HotCache::HotCache(const std::vector<FlashExtent>& extents, CachePolicyKind policy, const ReadCost* cost)
    : policy_(MakeCachePolicy(policy)) {
  slots_.resize(extents.size());
  price_.assign(extents.size(), 1.0);
  for (size_t i = 0; i < extents.size(); i++) {
    slots_[i].n_in = extents[i].n_in;
    slots_[i].record_bytes = extents[i].record_bytes;
    slots_[i].slot_of.assign(static_cast<size_t>(extents[i].n_in), -1);
    if (cost && !cost->empty()) price_[i] = cost->seconds(extents[i].record_bytes + kIoAlign) / extents[i].record_bytes;
  }
  if (cost && !cost->empty()) {
    for (size_t i = 0; i < extents.size(); i++) order_.push_back(static_cast<int>(i));
    std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) { return price_[a] > price_[b]; });
  }
  if (policy_->pins_hot_set()) {
    freq_.resize(extents.size());
    for (size_t i = 0; i < extents.size(); i++) {
      if (static_cast<int64_t>(extents[i].record_freq.size()) != extents[i].n_in) {
        throw ModelError("BAD_ARGUMENT", "cache policy static needs the records' calibrated frequencies (activeflow.record_freq.*), which extent " +
                                             std::to_string(i) + " lacks; run `activeflow reorder` on the file");
      }
      freq_[i] = extents[i].record_freq;
    }
  }
}

std::vector<std::vector<int32_t>> HotCache::hot_sets(size_t bytes) const {
  // Greedy by value per cached byte: a record's frequency (visits per token that need it) x
  // its extent's device seconds per byte. Ties keep extent and record order.
  struct Cand {
    double value;
    uint32_t extent;
    int32_t record;
  };
  std::vector<Cand> cands;
  for (size_t i = 0; i < slots_.size(); i++) {
    for (int64_t r = 0; r < slots_[i].n_in; r++) cands.push_back({freq_[i][r] * price_[i], static_cast<uint32_t>(i), static_cast<int32_t>(r)});
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.value > b.value; });
  std::vector<std::vector<int32_t>> sets(slots_.size());
  size_t left = bytes;
  for (const Cand& c : cands) {
    const uint32_t rb = slots_[c.extent].record_bytes;
    if (rb > left) continue;
    left -= rb;
    sets[c.extent].push_back(c.record);
  }
  for (auto& s : sets) std::sort(s.begin(), s.end());
  return sets;
}

std::vector<int32_t> HotCache::split(size_t bytes) const {
  std::vector<int32_t> caps(slots_.size(), 0);
  if (order_.empty()) {
    uint64_t total = 0;
    for (const auto& c : slots_) total += static_cast<uint64_t>(c.n_in) * c.record_bytes;
    const double frac = total > 0 ? std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total)) : 0.0;
    for (size_t i = 0; i < slots_.size(); i++) caps[i] = static_cast<int32_t>(frac * static_cast<double>(slots_[i].n_in));
    return caps;
  }
  size_t left = bytes;
  for (int i : order_) {
    const ExtentSlots& c = slots_[i];
    caps[i] = static_cast<int32_t>(std::min<uint64_t>(static_cast<uint64_t>(c.n_in), left / c.record_bytes));
    left -= static_cast<size_t>(caps[i]) * c.record_bytes;
  }
  return caps;
}

size_t HotCache::allocated() const {
  size_t b = 0;
  for (const auto& c : slots_) b += c.mem.size();
  return b;
}

void HotCache::resize(size_t bytes) {
  bytes_ = bytes;
  if (policy_->pins_hot_set()) {
    // A set that changed is read again at the extent's next visit; one that did not is kept.
    // Shrink everything first, then grow, so the peak never holds both sizes.
    const std::vector<std::vector<int32_t>> sets = hot_sets(bytes);
    for (int pass = 0; pass < 2; pass++) {
      for (size_t i = 0; i < slots_.size(); i++) {
        ExtentSlots& c = slots_[i];
        const std::vector<int32_t>& set = sets[i];
        const int32_t cap = static_cast<int32_t>(set.size());
        if ((pass == 0) == (cap > c.cap) || set == c.chan_of) continue;
        c.mem = AlignedBuffer();
        if (cap > 0) c.mem = AlignedBuffer(static_cast<size_t>(cap) * c.record_bytes);
        c.cap = cap;
        c.used = cap;
        c.valid = 0;
        c.chan_of = set;
        std::fill(c.slot_of.begin(), c.slot_of.end(), -1);
      }
    }
    policy_->plan(slots_);
    return;
  }
  const bool prefix = policy_->pins_prefix();
  // Shrink everything first, then grow, so the peak never holds both sizes.
  const std::vector<int32_t> caps = split(bytes);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < slots_.size(); i++) {
      ExtentSlots& c = slots_[i];
      const int32_t cap = caps[i];
      const bool grow = cap > c.cap;
      if ((pass == 0) == grow) continue;
      const size_t want = static_cast<size_t>(cap) * c.record_bytes;
      if (prefix) {
        // The records that stay are still valid: keep them in place.
        if (!grow) {
          c.mem.shrink(want);
        } else {
          AlignedBuffer m(want);
          if (c.valid > 0) std::memcpy(m.data(), c.mem.data(), static_cast<size_t>(c.valid) * c.record_bytes);
          c.mem = std::move(m);
        }
        c.valid = std::min(c.valid, cap);
        c.cap = cap;
        c.used = cap;
        c.chan_of.resize(static_cast<size_t>(cap));
        for (int32_t s = 0; s < cap; s++) c.chan_of[s] = s;
        for (int64_t j = 0; j < c.n_in; j++) c.slot_of[j] = j < c.valid ? static_cast<int32_t>(j) : -1;
      } else {
        c.mem = AlignedBuffer();  // free before allocating
        if (want > 0) c.mem = AlignedBuffer(want);
        c.cap = cap;
        c.used = 0;
        c.valid = 0;
        c.chan_of.assign(static_cast<size_t>(cap), -1);
        std::fill(c.slot_of.begin(), c.slot_of.end(), -1);
      }
    }
  }
  // Extents whose size did not change keep their state; a dynamic policy restarts anyway.
  if (!prefix) {
    for (auto& c : slots_) {
      c.used = 0;
      std::fill(c.chan_of.begin(), c.chan_of.end(), -1);
      std::fill(c.slot_of.begin(), c.slot_of.end(), -1);
    }
  }
  policy_->plan(slots_);
}

}  // namespace activeflow
