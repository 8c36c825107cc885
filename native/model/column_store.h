// Active-weight columns on flash, the hot cache in DRAM, preload buffers, and the sparse
// linear step. For each (layer, site) visit: the active input channels (nonzero after
// thresholding) are looked up in the cache, then in the layer group's preload buffer (filled
// in the background from a prediction, see Model::preload_group); misses are read from flash
// at once (one urgent batch, planned on the device's read-cost curve, ahead of queued
// preloads) into cache slots, the group's buffer or a staging area; compute starts on the
// records already in DRAM and follows the reads as they land. y = sum over active j of
// x_j * column_j in ascending j, in chunks that never split a kernel's column group, so where
// or when a column arrived (the budget, the cache policy, the prediction, the read plan)
// never changes the result.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/reader.h"
#include "model/flash_counters.h"
#include "model/hot_cache.h"
#include "model/linear_source.h"
#include "model/site.h"
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
  // The file's record order (FLASH_FORMAT.md, activeflow.record_order): [n_in] channel -> the
  // record holding it; empty when record j holds channel j. Only reads and the cache see
  // records; the compute walks channels ascending, so the sums are the identity order's.
  std::vector<int32_t> record_of;
  // [n_in] calibrated activity of each record, in file order (activeflow.record_freq): layer
  // visits per token that need the record. Empty when the file has none; the static policy
  // needs it.
  std::vector<float> record_freq;
  int32_t record(int32_t channel) const { return record_of.empty() ? channel : record_of[channel]; }
};

struct ColumnStats {
#define AF_COUNTER_FIELD(field, js, type, doc) type field = 0;
  AF_FLASH_COUNTERS(AF_COUNTER_FIELD)
#undef AF_COUNTER_FIELD
#define AF_SITE_COUNTER_FIELD(field, js, doc) uint64_t field[4] = {0, 0, 0, 0};
  AF_FLASH_SITE_COUNTERS(AF_SITE_COUNTER_FIELD)
#undef AF_SITE_COUNTER_FIELD
};

class ColumnStore final : public LinearSource {
 public:
  // extents indexed [group * 4 + site]. cache_bytes: the hot cache's share of the budget.
  ColumnStore(std::vector<FlashExtent> extents, int group_size, std::shared_ptr<Reader> reader,
              const PageChecksums* sums, size_t cache_bytes, CachePolicyKind policy, const ReadCost* cost);

  // ys[t] ([n][ldy]) = W_t x for every tensor t of (layer, site); x is [n][stride], already
  // thresholded (zeros are inactive).
  void linear(int layer, int site, const float* x, int n, size_t stride, float* const* ys,
              const int64_t* ldys, ThreadPool& pool) override;
  ~ColumnStore();

  // A predicted channel of one site of a group, with its priority (higher reads first).
  using Candidate = ChannelScore;
  // Reads the records of the candidates not in the cache into the group's preload buffer in
  // the background (best score first while the buffer has room). The buffer of group g is
  // g % 2: the computing group and the next one are resident together.
  void preload(int group, std::vector<Candidate>& cands);
  // Layer groups of one layer: reads the records of (layer, site) whose predicted score is
  // above `margin` and that are not cached into the next of two site buffers in the
  // background; the visit of (layer, site) computes on them as they land and reads the rest
  // on demand. score is [n_in] (see Model::predict_scores).
  void prefetch_site(int layer, int site, const float* score, float margin);
  // Read-ahead (groups of one layer): each visit starts reading every record of the next
  // (layer, site) that is not cached, planned into large reads on the device's curve, so the
  // device works while this site computes; the next visit finds its misses there. Needs the
  // two site buffers (set_preload_bytes); records that do not fit are read on demand.
  void set_read_ahead(bool on) { read_ahead_ = on; }
  bool reading_ahead() const { return read_ahead_ && preloading() && group_size_ == 1; }
  // Waits for every background read (prefetches, preloads) and rethrows the first error: a
  // pass ends with nothing in flight that it may have computed on.
  void settle();
  // Two preload buffers of bytes / 2 each; 0 disables preloading. Waits for reads in flight.
  void set_preload_bytes(size_t bytes);
  size_t preload_bytes() const { return preload_bytes_; }
  bool preloading() const { return preload_bytes_ > 0; }
  int group_size() const { return group_size_; }
  bool cached(int group, int site, int32_t channel) const;
  // Waits for every preload in flight (errors dropped: an aborted pass leaves them behind).
  void drain();

  // Re-plans the cache for a new size. A pinned prefix keeps the records that stay; a dynamic
  // policy drops its columns. Memory that is dropped goes back to the OS at once.
  void set_cache_bytes(size_t bytes);
  size_t cache_bytes() const { return cache_.bytes(); }
  CachePolicyKind cache_policy() { return cache_.policy().kind(); }
  std::vector<int32_t> cache_slots() { return cache_.caps(); }
  // Bytes of cache and staging memory allocated now.
  size_t resident_bytes() const;
  size_t staging_bytes() const { return staging_.size(); }
  // LFU counts restart for each sequence (as the paper's policy).
  void reset_counts();
  const ColumnStats& stats() const { return stats_; }
  void reset_stats() { stats_ = ColumnStats(); }

 private:
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
  // A site prefetch: packed records of one (layer, site), each landing on its own.
  struct SiteBuf {
    int layer = -1;
    int site = -1;
    uint64_t ticket = 0;
    AlignedBuffer mem;
    size_t used = 0;
    std::vector<int64_t> off_of;  // [n_in] byte offset of the channel's record, or -1
    std::vector<int32_t> req_of;  // [n_in] its (first) device read in the batch
    std::vector<int32_t> req2_of; // [n_in] the device read holding its second piece, or -1
    std::vector<int32_t> placed;  // channels with off_of set
    std::unique_ptr<std::atomic<int32_t>[]> left;  // [requests] pieces still to land
    std::unique_ptr<std::atomic<uint8_t>[]> gate;  // [requests] see LandingBoard::gate
    size_t left_cap = 0;
    size_t reads = 0;  // device reads of the pending batch
  };
  // Collects a finished (or waits for an unfinished) site prefetch: stats, errors.
  void collect(SiteBuf& b);
  // Empties the site buffer not used by `busy` and assigns it to (layer, site).
  SiteBuf& claim_site(int layer, int site, const SiteBuf* busy);
  // Plans the records of `channels` (of extent e) into device reads landing back to back in
  // b, as many as fit, and submits them in the background.
  void stage_site(SiteBuf& b, const FlashExtent& e, const std::vector<int32_t>& channels);
  // Stages every uncached record of extent ei (the visit after the one using `busy`).
  void read_ahead(size_t ei, const SiteBuf* busy);
  // At its visit, the active channels are known: b's reads not yet issued are withdrawn and
  // their records become misses, planned with the visit's others on what is active.
  void withdraw(SiteBuf& b);
  GroupBuf& claim(int group);  // buffer g % 2, emptied and assigned to group g
  void wait_preload(GroupBuf& b);
  uint8_t* place(GroupBuf& b, int site, int32_t channel, uint32_t record_bytes);
  // Reads the records of slots [c.valid, c.cap) of extent ei (a pinned set), consecutive
  // records in one read.
  void fill_pinned(size_t ei);
  // y_t += the columns of active_[c0, c1) for every tensor t of the visit.
  void compute(const FlashExtent& e, int li, size_t c0, size_t c1, const float* x, int n, size_t stride,
               float* const* ys, const int64_t* ldys, ThreadPool& pool);
  // The furthest point in (done, ready] where a compute chunk may end without changing any
  // sum (see compute); done when there is none.
  size_t chunk_end(const FlashExtent& e, size_t done, size_t ready) const;
  // Index of the first active channel at or after `from` whose record has not landed.
  size_t landed_prefix(size_t from) const;
  // Plans plan_reqs_ (records of one extent) on the device's curve into device reads that land
  // back to back in an arena of cap bytes: read_at_[k] is read k's offset there, *fit the
  // number of reads that fit.
  ReadPlan plan_in_place(size_t cap, size_t* fit);
  // Plans the misses of this visit into device reads landing in the staging arena, points
  // their records there and submits the batch (urgent); returns its ticket.
  uint64_t read_misses(const FlashExtent& e);

  std::vector<FlashExtent> extents_;
  int group_size_;
  std::shared_ptr<Reader> reader_;
  const PageChecksums* sums_;
  HotCache cache_;
  AlignedBuffer staging_;        // the largest extent: every record of one visit fits
  size_t preload_bytes_ = 0;
  GroupBuf bufs_[2];
  SiteBuf site_bufs_[2];
  int next_site_buf_ = 0;
  bool read_ahead_ = false;
  std::vector<int32_t> stage_channels_;  // channels stage_site reads, ascending record
  uint64_t visit_ = 0;
  ColumnStats stats_;
  // Per-visit scratch.
  std::vector<int32_t> active_;        // active channels, ascending
  std::vector<const uint8_t*> records_;  // [active] where each record is (or lands)
  std::vector<const std::atomic<int32_t>*> wait_on_;  // [active] its landing counter, or null (in DRAM)
  std::vector<const std::atomic<int32_t>*> wait_also_;  // [active] a second read of a split record, or null
  struct Miss {
    int32_t active;  // index in active_
    uint8_t* keep;   // cache slot or group buffer that also gets the record, or null
  };
  std::vector<Miss> miss_;
  std::vector<ReadReq> plan_reqs_;
  std::vector<size_t> read_at_;  // [device read] its offset in the arena (see plan_in_place)
  std::vector<std::pair<uint8_t*, const uint8_t*>> copies_;  // prefetched records a cache slot takes
  std::vector<Candidate> cands_;
  std::vector<const void*> cols_;
  std::vector<float> a_;
  std::vector<ReadReq> reqs_;
  std::unique_ptr<std::atomic<int32_t>[]> left_;  // [requests] pieces still to land
  size_t left_cap_ = 0;
  Waker waker_;
};

}  // namespace activeflow
