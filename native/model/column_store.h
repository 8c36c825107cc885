// Active-weight columns on flash, a hot-column cache in DRAM, preload buffers, and the sparse
// linear step. For each (layer, site) visit: the active input channels (nonzero after
// thresholding) are looked up in the cache, then in the layer group's preload buffer (filled
// in the background from a prediction, see Model::preload_group); misses are read from flash
// at once (coalesced direct I/O, ahead of queued preloads) into cache slots, the group's buffer
// or a staging area; then y = sum over active j of x_j * column_j, in ascending j, so where a
// column came from (the budget, the prediction) never changes the result.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/reader.h"
#include "model/threadpool.h"

namespace activeflow {

// Where one layer's column of one tensor sits inside a record.
struct FlashPart {
  uint32_t offset;  // bytes from the record start
  uint32_t bytes;   // row_bytes(type, n_out), or af_colx_code_bytes(type, n_out) when split
  int64_t n_out;    // column length = output rows of the tensor
  int type = 0;     // block type: the column type, or the split source type (Q4_0, Q4_1, Q8_0)
  // Split columns (activeflow/colx_kernels.h): the part's resident scale plane, set by the
  // model from the resident tensor named scales_name; null for requantised columns.
  const uint8_t* scales = nullptr;
  std::string scales_name;
};

// One extent: n_in records of record_bytes, for the layers of one group and one site.
struct FlashExtent {
  int group = 0;
  int site = 0;
  int first_layer = 0;
  int layers = 0;
  int tensors = 0;  // tensors of the site (3 for attn_in, 2 for ffn_in, else 1)
  int type = 0;     // column type (unused when the parts are split)
  int64_t n_in = 0;
  uint64_t offset = 0;  // absolute file offset of record 0
  uint32_t record_bytes = 0;
  std::vector<FlashPart> parts;  // [layers][tensors]
};

struct ColumnStats {
  uint64_t lookups = 0;    // active channels looked up
  uint64_t hits = 0;       // found in the cache
  uint64_t preload_hits = 0;   // found in the group's preload buffer
  uint64_t demand_loads = 0;   // read on demand (after the real activation was known)
  uint64_t preload_records = 0;      // records preloaded
  uint64_t preload_bytes_read = 0;   // bytes the device returned for preloads
  uint64_t demand_bytes_read = 0;    // bytes the device returned for on-demand loads
  uint64_t active_bytes = 0;         // record bytes of active channels (what compute used)
  uint64_t active_preload_bytes = 0; // of which arrived by preload
  uint64_t active_demand_bytes = 0;  // of which arrived on demand
  double preload_io_s = 0;    // loader time of preload batches (submit to done)
  double preload_wait_s = 0;  // compute blocked waiting for a preload
  double demand_wait_s = 0;   // compute blocked on on-demand reads
  uint64_t bytes_read = 0; // bytes the device returned
  uint64_t bytes_requested = 0;
  uint64_t device_reads = 0;
  double io_wait_s = 0;
  double compute_s = 0;
};

class ColumnStore {
 public:
  // extents indexed [group * 4 + site]. cache_bytes: the hot cache's share of the budget.
  ColumnStore(std::vector<FlashExtent> extents, int group_size, std::shared_ptr<Reader> reader,
              const PageChecksums* sums, size_t cache_bytes);

  // ys[t] ([n][ldy]) = W_t x for every tensor t of (layer, site); x is [n][stride], already
  // thresholded (zeros are inactive).
  void linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
              const int64_t* ldys, ThreadPool& pool);
  ~ColumnStore();

  // A predicted channel of one site of a group, with its priority (higher reads first).
  struct Candidate {
    float score;
    int32_t site;
    int32_t channel;
  };
  // Reads the records of the candidates not in the cache into the group's preload buffer in
  // the background (best score first while the buffer has room). The buffer of group g is
  // g % 2: the computing group and the next one are resident together.
  void preload(int group, std::vector<Candidate>& cands);
  // Two preload buffers of bytes / 2 each; 0 disables preloading. Waits for reads in flight.
  void set_preload_bytes(size_t bytes);
  size_t preload_bytes() const { return preload_bytes_; }
  bool preloading() const { return preload_bytes_ > 0; }
  int group_size() const { return group_size_; }
  bool cached(int group, int site, int32_t channel) const;
  // Waits for every preload in flight (errors dropped: an aborted pass leaves them behind).
  void drain();

  // Re-plans the cache for a new size; cached columns are dropped (memory goes back to the OS).
  void set_cache_bytes(size_t bytes);
  size_t cache_bytes() const { return cache_bytes_; }
  // Bytes of cache and staging memory allocated now.
  size_t resident_bytes() const;
  size_t staging_bytes() const { return staging_.size(); }
  // LFU counts restart for each sequence (as the paper's policy).
  void reset_counts();
  const ColumnStats& stats() const { return stats_; }
  void reset_stats() { stats_ = ColumnStats(); }

 private:
  struct Cache {
    std::vector<int32_t> slot_of;  // [n_in] -> slot, or -1
    std::vector<int32_t> chan_of;  // [cap] -> channel, or -1 when free
    std::vector<uint32_t> count;   // [n_in] uses in this sequence
    std::vector<uint64_t> stamp;   // [cap] visit that last used the slot (pinned in that visit)
    uint8_t* mem = nullptr;        // [cap][record_bytes]
    int32_t cap = 0;
    int32_t used = 0;
  };
  void plan_cache();
  // A preload buffer: packed records of one group's channels, [bytes].
  struct GroupBuf {
    int group = -1;
    uint64_t ticket = 0;  // pending preload batch, 0 when none
    double submitted = 0; // when the pending batch was submitted
    AlignedBuffer mem;
    size_t used = 0;
    std::vector<int64_t> off_of[4];   // [site][n_in] byte offset of the channel's record, or -1
    std::vector<int32_t> placed[4];   // [site] channels with off_of set (to reset quickly)
  };
  GroupBuf& claim(int group);  // buffer g % 2, emptied and assigned to group g
  void wait_preload(GroupBuf& b);
  uint8_t* place(GroupBuf& b, int site, int32_t channel, uint32_t record_bytes);

  std::vector<FlashExtent> extents_;
  int group_size_;
  std::shared_ptr<Reader> reader_;
  const PageChecksums* sums_;
  size_t cache_bytes_;
  AlignedBuffer cache_mem_;
  std::vector<Cache> caches_;    // per extent
  AlignedBuffer staging_;        // the largest extent: every record of one visit fits
  size_t preload_bytes_ = 0;
  GroupBuf bufs_[2];
  uint64_t visit_ = 0;
  ColumnStats stats_;
  // Per-visit scratch.
  std::vector<int32_t> active_;
  std::vector<const uint8_t*> records_;
  std::vector<const void*> cols_;
  std::vector<float> a_;
  std::vector<ReadReq> reqs_;
  std::vector<int32_t> victims_;
};

}  // namespace activeflow
