// The hot-weight cache (PAPER.md, Technique 2): records of each extent kept in DRAM across
// tokens. HotCache owns the memory (one buffer per extent, so a resize returns what it drops)
// and the slot maps; a CachePolicy decides which channels hold the slots.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/read_cost.h"

namespace activeflow {

struct FlashExtent;

// One extent's slots: cap records of record_bytes, slot s holding channel chan_of[s].
struct ExtentSlots {
  int64_t n_in = 0;
  uint32_t record_bytes = 0;
  int32_t cap = 0;
  int32_t used = 0;                // slots handed out so far (a dynamic policy fills 0..cap-1 first)
  // Slots are indexed by record (the file's order, which a record order may permute away from
  // the channel order; see FlashExtent::record_of).
  std::vector<int32_t> slot_of;    // [n_in] record -> slot, or -1
  std::vector<int32_t> chan_of;    // [cap] slot -> record, or -1 when free
  AlignedBuffer mem;               // [cap][record_bytes]
  int32_t valid = 0;               // a pinned set: slots [0, valid) have been read
  uint8_t* slot(int32_t s) const { return mem.data() + static_cast<size_t>(s) * record_bytes; }
};

enum class CachePolicyKind { kLfu, kPrefix, kStatic };
// "lfu" / "prefix" / "static"; throws ModelError(BAD_ARGUMENT) naming the value otherwise.
CachePolicyKind ParseCachePolicy(const std::string& name);
const char* CachePolicyName(CachePolicyKind kind);

// Which channels of an extent hold its slots. Calls for one extent come in visits: begin_visit,
// then hit() for every cached active channel, then admit() for each miss in ascending order.
class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual CachePolicyKind kind() const = 0;
  // The cache was (re)planned: per-extent state sized for `slots`.
  virtual void plan(const std::vector<ExtentSlots>& slots) = 0;
  virtual void begin_visit(size_t extent, ExtentSlots& c, uint64_t visit) = 0;
  virtual void hit(size_t extent, ExtentSlots& c, int32_t channel, int32_t slot) = 0;
  // A slot for the missed channel (its old holder evicted), or -1 to read it past the cache.
  virtual int32_t admit(size_t extent, ExtentSlots& c, int32_t channel) = 0;
  // A new sequence starts (the paper's LFU counts restart per sequence).
  virtual void reset_sequence() {}
  // Slots hold the records [0, cap) of the file order, read in one span at the first visit.
  virtual bool pins_prefix() const { return false; }
  // Slots hold a set HotCache chose from the records' calibrated frequencies (ascending
  // records, so a hot-first file's set is a prefix), read at the extent's first visit.
  virtual bool pins_hot_set() const { return false; }
  bool pins() const { return pins_prefix() || pins_hot_set(); }
};

std::unique_ptr<CachePolicy> MakeCachePolicy(CachePolicyKind kind);

class HotCache {
 public:
  // With a read-cost curve the split favours the extents whose misses cost the device the
  // most time per byte (see resize); without one it is proportional. The static policy needs
  // every extent's record_freq (ModelError BAD_ARGUMENT otherwise).
  HotCache(const std::vector<FlashExtent>& extents, CachePolicyKind policy, const ReadCost* cost);
  // Splits `bytes` over the extents and frees what is dropped at once. A pinned prefix keeps
  // the records that stay; a dynamic policy starts empty. The split: with a cost curve, extents
  // in falling order of the device time per byte of one record read alone (about a page more
  // than the record: small records waste pages and IOPS), each filled before the next; without
  // one, in proportion to their size. The static policy splits by record instead: the records
  // of highest frequency x price (device seconds saved per cached byte) across all extents.
  void resize(size_t bytes);
  size_t bytes() const { return bytes_; }        // what resize() was given
  size_t allocated() const;                      // slot memory held now
  ExtentSlots& slots(size_t extent) { return slots_[extent]; }
  std::vector<int32_t> caps() const {
    std::vector<int32_t> c;
    for (const auto& s : slots_) c.push_back(s.cap);
    return c;
  }
  CachePolicy& policy() { return *policy_; }

 private:
  std::vector<int32_t> split(size_t bytes) const;
  // The static policy's sets: [extent] ascending records.
  std::vector<std::vector<int32_t>> hot_sets(size_t bytes) const;

  std::vector<ExtentSlots> slots_;
  std::vector<double> price_;                   // [extent] device seconds per byte of one record read alone (1 without a curve)
  std::vector<std::vector<float>> freq_;        // [extent][n_in] calibrated activity per record (static policy)
  std::vector<int> order_;  // extents in the order the split fills them
  std::unique_ptr<CachePolicy> policy_;
  size_t bytes_ = 0;
};

}  // namespace activeflow
