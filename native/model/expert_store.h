// The experts of a mixture-of-experts model on flash (src/flash/experts.ts): each (layer,
// expert) is one contiguous span holding its ffn_in records (gate and up parts per input
// channel), its ffn_out records (the down part per hidden channel) and, for split columns,
// its scale planes. A pool of slots, each the size of the largest span, holds whole experts:
// the ones the router picked for the layer computing now (pinned), the ones pre-gating
// predicted for the next layer (read in the background), and otherwise a hot cache, replaced
// by least selection count (LFU, counts restart per sequence), then least recent use.
// Where an expert's bytes came from never changes the result: compute reads the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/reader.h"
#include "model/threadpool.h"

namespace activeflow {

// One tensor's column inside a record of an expert extent.
struct ExpertPart {
  uint32_t offset = 0;  // bytes from the record start
  uint32_t bytes = 0;
  int64_t n_out = 0;    // column length
  int type = 0;         // the column type, or the split source type
  int64_t scales = -1;  // split: the part's scale plane, bytes from the span start; -1: columns
};

// One (layer, expert) on flash.
struct ExpertSpan {
  uint64_t offset = 0;      // absolute file offset of the span = ffn_in record 0 (4 KiB aligned)
  uint64_t bytes = 0;       // the whole expert, a page multiple
  uint64_t out_offset = 0;  // ffn_out record 0, bytes from the span start
  uint32_t rec_in = 0;      // ffn_in record bytes (gate + up parts)
  uint32_t rec_out = 0;     // ffn_out record bytes (the down part)
  int64_t n_in = 0;         // residual width: ffn_in records
  int64_t n_ff = 0;         // hidden width: ffn_out records
  ExpertPart gate, up, down;
};

struct ExpertStats {
  uint64_t lookups = 0;           // (layer, expert) uses the router asked for
  uint64_t hits = 0;              // of them found resident (cached or landed)
  uint64_t prefetch_hits = 0;     // of them found read or being read by pre-gating
  uint64_t reads = 0;             // whole experts read on demand
  uint64_t prefetches = 0;        // whole experts read by pre-gating
  uint64_t bytes_read = 0;        // both kinds
  uint64_t pred_tp = 0, pred_fp = 0, pred_fn = 0;  // pre-gating at distance 1, per token
  double wait_s = 0;              // compute blocked on expert reads
  double compute_s = 0;           // expert matrix products
};

class ExpertStore {
 public:
  // spans: [n_layer][per_layer] (per_layer = routed experts + the shared one, if any).
  // pool_bytes is rounded down to whole slots and raised to min_slots.
  ExpertStore(std::vector<ExpertSpan> spans, int per_layer, int min_slots, std::shared_ptr<Reader> reader,
              const PageChecksums* sums, size_t pool_bytes);
  ~ExpertStore();

  // Re-plans the pool between tokens: whole slots of slot_bytes(), at least min_slots; cached
  // experts in slots that go are dropped, their memory returned to the OS.
  void set_pool_bytes(size_t bytes);
  size_t slot_bytes() const { return slot_bytes_; }
  int slots() const { return static_cast<int>(slots_.size()); }
  size_t resident_bytes() const { return slots_.size() * slot_bytes_; }
  const ExpertSpan& span(int layer, int expert) const { return spans_[static_cast<size_t>(layer) * per_layer_ + expert]; }

  // Pins (layer, expert) for this layer's compute and returns its slot; reads it (urgent) when
  // it is not resident. Counts one selection for the LFU order when `count`.
  int acquire(int layer, int expert, bool count);
  bool resident(int layer, int expert) const { return slot_of_[static_cast<size_t>(layer) * per_layer_ + expert] >= 0; }
  // Waits until the slot's expert has landed; returns its bytes.
  const uint8_t* wait(int slot);
  void release_all();
  // The layer's routing is known: experts pre-gating read for it and it did not pick become
  // ordinary cached experts (a demand read may replace them by the LFU order).
  void routed(int layer);
  // Pre-gating: starts reading (layer, expert) in the background into a slot nobody pinned,
  // unless it is resident, no slot can be spared, or the pool has fewer than twice min_slots.
  // Returns whether a read was issued.
  bool prefetch(int layer, int expert);
  // Waits for every read in flight (errors dropped); the pass is over or aborted.
  void drain();
  void reset_counts();
  ExpertStats& stats() { return stats_; }
  void reset_stats() { stats_ = ExpertStats(); }
  int cached_experts() const;

 private:
  struct Slot {
    AlignedBuffer mem;
    int key = -1;            // layer * per_layer + expert, or -1
    uint64_t ticket = 0;     // its read, while in flight (0: landed or empty)
    bool pinned = false;
    bool prefetched = false; // read by pre-gating and not used yet
    bool ahead = false;      // one of pre-gating's own slots (ahead_ of them)
    uint64_t last_use = 0;
  };
  int victim(bool for_prefetch);
  void load(int s, int key, bool urgent);
  void settle(Slot& s);

  std::vector<ExpertSpan> spans_;
  int per_layer_;
  int min_slots_;
  std::shared_ptr<Reader> reader_;
  const PageChecksums* sums_;
  size_t slot_bytes_ = 0;
  std::vector<Slot> slots_;
  int ahead_ = 0;  // slots pre-gating read into last (it reuses them once it holds min_slots_)
  std::vector<int32_t> slot_of_;   // [n_layer * per_layer] slot holding the expert, or -1
  std::vector<uint32_t> count_;    // [n_layer * per_layer] selections this sequence
  uint64_t clock_ = 0;
  ExpertStats stats_;
};

// y_t[b] = W_t x[b] for the parts of one expert extent (ffn_in: gate into ys[0], up into ys[1];
// ffn_out: down into ys[0]), x [n][n_in] dense rows: every channel of the expert's records in
// ascending order, rows of W split between threads. ys are [n][ldy], overwritten.
void ExpertLinear(const ExpertSpan& e, const uint8_t* base, bool in, const float* x, int n, float* const* ys,
                  int64_t ldy, ThreadPool& pool);

}  // namespace activeflow
