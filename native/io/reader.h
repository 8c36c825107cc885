// Batched range reads from a FlashFile: each batch is planned (sorted, coalesced, aligned;
// see read_plan.h), read into an aligned staging area with up to queue_depth reads in
// flight, optionally checked page by page against CRC-32C, and copied to the callers' dst.
// A read that is exactly one page-aligned request into a 4 KiB-aligned dst skips the
// staging copy and lands in dst.
// A loader thread owns the I/O engine and issues batches in submission order, overlapping
// the tail of one with the head of the next, so a caller can submit the next layer's reads
// and wait for them after computing this layer.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/flash_file.h"
#include "io/io_defaults.h"
#include "io/io_engine.h"
#include "io/read_plan.h"

namespace activeflow {

enum class IoBackend { kAuto, kIoUring, kPread };

struct ReaderOptions {
  // kAuto: io_uring when the kernel allows it, else the pread pool (AF_IO_BACKEND=pread in
  // the environment forces the pool). io_uring is preferred by measurement on the 2-core
  // virtio dev machine (bench/results/io-2026-11-22.json): it matches or beats the pool at
  // 10 of 15 size/depth points and spends 1.5-3x less CPU per GB, which decode needs.
  // Defaults to kAuto.
  IoBackend backend = IoBackend::kAuto;
  // Device reads in flight at once. Defaults to kDefaultQueueDepth.
  unsigned queue_depth = kDefaultQueueDepth;
  // When neighbouring ranges share one read: by the device's read-cost curve when one is
  // given, else when they are at most max_gap apart (< 0 never merges). Defaults to
  // kDefaultMaxGap without a curve.
  int64_t max_gap = kDefaultMaxGap;
  ReadCost cost;
  // Largest single device read, a multiple of 4096. Defaults to kDefaultMaxRead.
  uint32_t max_read = kDefaultMaxRead;
  // Reads landing in the reader's staging (not in place) in flight at most; the staging holds
  // this many reads of max_read. Defaults to kDefaultStagingSlots (at most queue_depth).
  unsigned staging_slots = kDefaultStagingSlots;
  // Reads of background (non-urgent) batches in flight at most, so an urgent batch waits for
  // few of them; 0 = queue_depth. Defaults to 0.
  unsigned max_background = 0;
};

// Wakes a thread that waits for reads to land (a futex on an epoch counter): the loader bumps
// the epoch after landing pieces, a waiter sleeps only while the epoch it saw is current.
class Waker {
 public:
  uint32_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Sleeps until the epoch differs from `seen` (or a spurious wake-up: callers re-check).
  void wait(uint32_t seen);
  void notify();

 private:
  std::atomic<uint32_t> epoch_{0};
  std::atomic<int> sleepers_{0};
};

// Per-request completion, for a caller that computes on records as they land. The caller
// sets left[i] = 1 for each of the batch's n requests before submitting; the loader turns it
// into the request's piece count once the batch is planned and counts pieces down as they
// land; 0 means the request's bytes are in its dst. A failed batch sets every left[i] to 0
// (wait() then throws), so a waiter never blocks on a read that will not come.
struct LandingBoard {
  std::atomic<int32_t>* left = nullptr;  // [n]
  size_t n = 0;
  Waker* waker = nullptr;
  // [n] optional, for as_planned batches (request i is device read i): the caller sets each to
  // kGateOpen; the loader swaps it to kGateIssued before issuing the read, the caller may swap it
  // to kGateWithdrawn first, and the loader then skips the read (its left[i] stays as it was).
  // The swap that wins decides, so the caller knows exactly which reads will land.
  std::atomic<uint8_t>* gate = nullptr;
};
inline constexpr uint8_t kGateOpen = 0, kGateIssued = 1, kGateWithdrawn = 2;

// Expected CRC-32C of each 4 KiB page of a file region: page i covers
// [base + 4096 i, base + 4096 (i + 1)), clipped to the file size. base is a multiple of 4096.
// The table must stay alive until the batch completes.
struct PageChecksums {
  const uint32_t* crcs = nullptr;
  uint64_t base = 0;
  uint64_t pages = 0;
};

struct ReadStats {
  uint64_t bytes_requested = 0;
  uint64_t bytes_read = 0;     // bytes the device returned
  uint64_t device_reads = 0;   // reads issued (including retries of short reads)
  uint64_t pages_verified = 0;
  uint64_t in_place_reads = 0;  // reads that landed in the caller's dst without a copy
  double io_seconds = 0;       // loader: batch start to last copy
  double wait_seconds = 0;     // caller: time blocked in wait()
};

class Reader {
 public:
  // Throws IoError("FLASH_IO") when io_uring is forced and unavailable.
  Reader(std::shared_ptr<const FlashFile> file, const ReaderOptions& opts);
  ~Reader();  // waits for reads in flight; batches not yet finished fail
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Queues a batch; dst buffers (and sums->crcs) must stay valid until wait() returns.
  // An urgent batch (an on-demand miss compute is blocked on) is issued before the unissued
  // reads of earlier batches (preloads), so it waits only for reads already in flight.
  // With a board, the batch reports each request as it lands (see LandingBoard). as_planned:
  // the requests are device reads already (4 KiB-aligned, at most max_read, aligned dst):
  // each is read alone, in place, never merged with its neighbours.
  uint64_t submit(std::vector<ReadReq> reqs, const PageChecksums* sums = nullptr, bool urgent = false,
                  const LandingBoard* board = nullptr, bool as_planned = false);
  // Makes a queued or running background batch urgent (a caller now waits for it): its
  // unissued reads go ahead of other background reads, with no in-flight cap.
  void promote(uint64_t ticket);
  // Blocks until the batch is done; rethrows its IoError. Each ticket is waited once.
  ReadStats wait(uint64_t ticket);
  // submit + wait; urgent by default (the caller is blocked on it).
  ReadStats read(const ReadReq* reqs, size_t n, const PageChecksums* sums = nullptr, bool urgent = true);

  const char* backend_name() const { return engine_->name(); }
  const ReaderOptions& options() const { return opts_; }
  const FlashFile& file() const { return *file_; }
  size_t staging_bytes() const { return staging_.size(); }

 private:
  struct Batch {
    uint64_t ticket;
    std::vector<ReadReq> reqs;
    PageChecksums sums;
    bool urgent = false;
    LandingBoard board;
    bool as_planned = false;
  };
  struct Result {
    bool done = false;
    ReadStats stats;
    std::exception_ptr error;
  };

  static constexpr unsigned kNoSlot = ~0u;
  struct InFlight {
    unsigned slot;  // staging slot index, or kNoSlot when the read lands in the caller's dst
    uint32_t got;   // bytes landed so far
  };
  // A batch the loader is working on; only the loader thread touches it.
  struct Active {
    uint32_t id = 0;
    double t0 = 0;
    Batch batch;
    ReadPlan plan;
    std::vector<InFlight> state;  // per device read
    size_t next = 0;              // reads issued
    size_t in_flight = 0;
    ReadStats stats;
    std::exception_ptr error;
    bool landed = false;  // requests landed since the waker was last notified
  };

  void Loop();
  void Issue(Active& a, size_t k);
  bool Complete(Active& a, size_t k, int64_t res);
  // Counts read k's pieces down on the batch's board (all of them when the batch failed).
  void Land(Active& a, size_t k);
  void FailBoard(Active& a);
  static bool LandsInPlace(const ReadPlan& plan, size_t k);
  uint8_t* Landing(const Active& a, size_t k) const;  // where read k's bytes arrive
  void Verify(const PageChecksums& sums, uint64_t offset, const uint8_t* data, uint64_t got, ReadStats& st) const;

  std::shared_ptr<const FlashFile> file_;
  ReaderOptions opts_;
  std::unique_ptr<IoEngine> engine_;
  AlignedBuffer staging_;            // [staging_slots][max_read]
  std::vector<unsigned> free_slots_;  // LIFO, so small reads keep touching the same pages

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Batch> queue_;
  std::vector<uint64_t> promoted_;  // tickets to make urgent, picked up by the loader
  std::map<uint64_t, Result> results_;
  uint64_t next_ticket_ = 1;
  bool stop_ = false;
  std::thread loader_;
};

// Whether io_uring_setup works here (probed once).
bool IoUringAvailable();
// The backend kAuto resolves to on this machine (honours AF_IO_BACKEND).
const char* DefaultIoBackendName();

}  // namespace activeflow
