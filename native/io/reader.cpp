#include "io/reader.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>

#include "io/crc32c.h"
#include "io/io_error.h"

namespace activeflow {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// AF_IO_BACKEND=pread makes kAuto behave as on a system that refuses io_uring, so tests and
// benchmarks can run the fallback on a machine that has io_uring.
bool AutoForcedToPread() {
  const char* v = std::getenv("AF_IO_BACKEND");
  return v && std::strcmp(v, "pread") == 0;
}

std::unique_ptr<IoEngine> MakeEngine(const FlashFile& f, IoBackend backend, unsigned depth) {
  if (backend == IoBackend::kPread || (backend == IoBackend::kAuto && AutoForcedToPread())) {
    return MakePreadPoolEngine(f.fd(), depth);
  }
  try {
    return MakeIoUringEngine(f.fd(), depth);
  } catch (const IoError& e) {
    if (backend == IoBackend::kIoUring) throw IoError(e.code, f.path() + ": " + e.what(), e.sys_errno);
    return MakePreadPoolEngine(f.fd(), depth);  // seccomp (EPERM), old kernel (ENOSYS), limits
  }
}

}  // namespace

void Waker::wait(uint32_t seen) {
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  if (epoch_.load(std::memory_order_seq_cst) == seen) {
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&epoch_), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  }
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

void Waker::notify() {
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&epoch_), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  }
}

bool IoUringAvailable() {
  static const bool ok = [] {
    try {
      MakeIoUringEngine(-1, 1);
      return true;
    } catch (const IoError&) {
      return false;
    }
  }();
  return ok;
}

const char* DefaultIoBackendName() { return !AutoForcedToPread() && IoUringAvailable() ? "io_uring" : "pread"; }

Reader::Reader(std::shared_ptr<const FlashFile> file, const ReaderOptions& opts) : file_(std::move(file)), opts_(opts) {
  if (opts_.queue_depth < 1 || opts_.queue_depth > 4096) {
    throw IoError("BAD_ARGUMENT", "queue depth " + std::to_string(opts_.queue_depth) + " must be in 1..4096");
  }
  if (opts_.max_read < kIoAlign || opts_.max_read % kIoAlign != 0) {
    throw IoError("BAD_ARGUMENT", "max read " + std::to_string(opts_.max_read) + " must be a positive multiple of 4096");
  }
  if (opts_.staging_slots < 1) throw IoError("BAD_ARGUMENT", "staging slots must be at least 1");
  const unsigned slots = std::min(opts_.staging_slots, opts_.queue_depth);
  staging_ = AlignedBuffer(static_cast<size_t>(slots) * opts_.max_read);
  for (unsigned i = slots; i-- > 0;) free_slots_.push_back(i);
  // The loader thread creates the engine: an io_uring set up with SINGLE_ISSUER accepts
  // submissions only from the thread that created it.
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  loader_ = std::thread([this, &ready] {
    try {
      engine_ = MakeEngine(*file_, opts_.backend, opts_.queue_depth);
    } catch (...) {
      ready.set_exception(std::current_exception());
      return;
    }
    ready.set_value();
    Loop();
  });
  try {
    started.get();
  } catch (...) {
    loader_.join();
    throw;
  }
}

Reader::~Reader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  loader_.join();
}

uint64_t Reader::submit(std::vector<ReadReq> reqs, const PageChecksums* sums, bool urgent, const LandingBoard* board,
                        bool as_planned) {
  if (board && board->n != reqs.size()) {
    throw IoError("BAD_ARGUMENT", "landing board has " + std::to_string(board->n) + " entries for " +
                                      std::to_string(reqs.size()) + " requests");
  }
  if (sums && sums->pages > 0) {
    if (!sums->crcs) throw IoError("BAD_ARGUMENT", "page checksums: table pointer is null");
    if (sums->base % kIoAlign != 0) {
      throw IoError("BAD_ARGUMENT", "page checksums: region base " + std::to_string(sums->base) + " must be a multiple of 4096");
    }
  }
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) throw IoError("FLASH_IO", file_->path() + ": reader is closed");
    ticket = next_ticket_++;
    results_[ticket];
    queue_.push_back({ticket, std::move(reqs), sums ? *sums : PageChecksums{}, urgent, board ? *board : LandingBoard{}, as_planned});
  }
  work_cv_.notify_one();
  return ticket;
}

void Reader::promote(uint64_t ticket) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Batch& b : queue_) {
      if (b.ticket == ticket) {
        b.urgent = true;
        return;
      }
    }
    promoted_.push_back(ticket);
  }
  work_cv_.notify_one();
}

ReadStats Reader::wait(uint64_t ticket) {
  const double t0 = Now();
  std::unique_lock<std::mutex> lock(mu_);
  auto it = results_.find(ticket);
  if (it == results_.end()) throw IoError("BAD_ARGUMENT", "read ticket " + std::to_string(ticket) + " is unknown or already waited for");
  done_cv_.wait(lock, [&] { return it->second.done; });
  Result r = std::move(it->second);
  results_.erase(it);
  lock.unlock();
  if (r.error) std::rethrow_exception(r.error);
  r.stats.wait_seconds = Now() - t0;
  return r.stats;
}

ReadStats Reader::read(const ReadReq* reqs, size_t n, const PageChecksums* sums, bool urgent) {
  return wait(submit(std::vector<ReadReq>(reqs, reqs + n), sums, urgent));
}

// The loader keeps reads of several batches in flight at once: when the oldest batch has
// nothing left to issue, reads of the next one fill the free slots, so the queue does not
// drain between batches (the next layer's preload starts while this layer's tail lands).
void Reader::Loop() {
  std::deque<std::unique_ptr<Active>> active;
  std::vector<IoDone> done(opts_.queue_depth);
  size_t in_flight = 0;
  size_t bg_in_flight = 0;
  uint32_t next_id = 1;
  for (;;) {
    std::deque<Batch> incoming;
    std::vector<uint64_t> promote;
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (active.empty()) work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      stopping = stop_;
      if (!stopping) incoming.swap(queue_);
      promote.swap(promoted_);
    }
    // Promoted batches move behind the urgent ones, ahead of every background batch.
    for (uint64_t t : promote) {
      for (auto it = active.begin(); it != active.end(); ++it) {
        if ((*it)->batch.ticket != t || (*it)->batch.urgent) continue;
        auto a = std::move(*it);
        active.erase(it);
        a->batch.urgent = true;
        auto at = active.begin();
        while (at != active.end() && (*at)->batch.urgent) ++at;
        active.insert(at, std::move(a));
        break;
      }
    }
    for (Batch& b : incoming) {
      auto a = std::make_unique<Active>();
      a->id = next_id++;
      a->t0 = Now();
      a->batch = std::move(b);
      try {
        MergeRule rule;
        rule.max_gap = a->batch.as_planned ? -1 : opts_.max_gap;
        if (!opts_.cost.empty() && !a->batch.as_planned) rule.cost = &opts_.cost;
        a->plan = PlanReads(a->batch.reqs.data(), a->batch.reqs.size(), rule, opts_.max_read, file_->size());
        a->stats.bytes_requested = a->plan.bytes_requested;
        a->state.resize(a->plan.reads.size());
        const LandingBoard& board = a->batch.board;
        if (board.left) {
          // Each request was marked 1 (pending) by the caller: make it its piece count.
          bool any = false;
          for (size_t i = 0; i < board.n; i++) {
            const int32_t add = static_cast<int32_t>(a->plan.pieces_of[i]) - 1;
            if (add != 0 && board.left[i].fetch_add(add, std::memory_order_acq_rel) + add == 0) any = true;
          }
          if (any && board.waker) board.waker->notify();
        }
      } catch (...) {
        a->error = std::current_exception();
      }
      if (a->batch.urgent) {
        // After other urgent batches, before every preload.
        auto at = active.begin();
        while (at != active.end() && (*at)->batch.urgent) ++at;
        active.insert(at, std::move(a));
      } else {
        active.push_back(std::move(a));
      }
    }
    // Fill the queue, oldest batch first; a stopping reader issues nothing new. A read that
    // is exactly one aligned request into an aligned dst lands there directly, without a slot.
    // Background reads in flight are capped so an on-demand batch finds the device nearly idle.
    const unsigned bg_cap = opts_.max_background > 0 ? std::min(opts_.max_background, opts_.queue_depth) : opts_.queue_depth;
    for (auto& a : active) {
      if (!a->batch.urgent) {
        size_t bg = 0;
        for (auto& b : active) {
          if (!b->batch.urgent) bg += b->in_flight;
        }
        bg_in_flight = bg;
      }
      while (!stopping && !a->error && a->next < a->plan.reads.size() && in_flight < opts_.queue_depth &&
             (a->batch.urgent || bg_in_flight < bg_cap)) {
        const size_t k = a->next;
        unsigned slot = kNoSlot;
        if (!LandsInPlace(a->plan, k)) {
          if (free_slots_.empty()) break;
          slot = free_slots_.back();
          free_slots_.pop_back();
        }
        if (const LandingBoard& bd = a->batch.board; bd.gate) {
          uint8_t open = kGateOpen;
          const uint32_t req = a->plan.pieces[a->plan.reads[k].first_piece].req;
          if (!bd.gate[req].compare_exchange_strong(open, kGateIssued, std::memory_order_acq_rel)) {
            if (slot != kNoSlot) free_slots_.push_back(slot);
            a->next++;  // withdrawn by the caller, who reads those records itself
            continue;
          }
        }
        a->state[k] = {slot, 0};
        a->next++;
        Issue(*a, k);
        a->in_flight++;
        in_flight++;
        if (!a->batch.urgent) bg_in_flight++;
      }
    }
    if (in_flight > 0) {
      const size_t n = engine_->reap(done.data(), done.size());
      for (size_t i = 0; i < n; i++) {
        const uint32_t id = static_cast<uint32_t>(done[i].tag >> 32);
        const size_t k = static_cast<size_t>(done[i].tag & 0xFFFFFFFFu);
        for (auto& a : active) {
          if (a->id != id) continue;
          if (Complete(*a, k, done[i].result)) {
            a->in_flight--;
            in_flight--;
          }
          break;
        }
      }
      // One wake-up per round of completions, not per record: a waiter computes on all that
      // landed meanwhile.
      for (auto& a : active) {
        if (!a->landed) continue;
        a->landed = false;
        if (a->batch.board.waker) a->batch.board.waker->notify();
      }
    }
    // Publish finished batches (in any order: results are keyed by ticket).
    std::vector<std::pair<uint64_t, Result>> finished;
    for (auto it = active.begin(); it != active.end();) {
      Active& a = **it;
      const bool all_issued = a.error || stopping || a.next == a.plan.reads.size();
      if (!all_issued || a.in_flight > 0) {
        ++it;
        continue;
      }
      Result r;
      r.done = true;
      if (a.error) {
        r.error = a.error;
        FailBoard(a);
      } else if (a.next < a.plan.reads.size()) {
        r.error = std::make_exception_ptr(IoError("FLASH_IO", file_->path() + ": reader closed before the read ran"));
        FailBoard(a);
      } else {
        a.stats.io_seconds = Now() - a.t0;
        r.stats = a.stats;
      }
      finished.emplace_back(a.batch.ticket, std::move(r));
      it = active.erase(it);
    }
    if (!finished.empty()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& f : finished) results_[f.first] = std::move(f.second);
      }
      done_cv_.notify_all();
    }
    if (stopping && in_flight == 0) break;
  }
  // Fail what is still queued so no waiter blocks forever.
  std::lock_guard<std::mutex> lock(mu_);
  for (const Batch& q : queue_) {
    if (q.board.left) {
      for (size_t i = 0; i < q.board.n; i++) q.board.left[i].store(0, std::memory_order_release);
      if (q.board.waker) q.board.waker->notify();
    }
    Result& r = results_[q.ticket];
    r.error = std::make_exception_ptr(IoError("FLASH_IO", file_->path() + ": reader closed before the read ran"));
    r.done = true;
  }
  queue_.clear();
  done_cv_.notify_all();
}

void Reader::Issue(Active& a, size_t k) {
  const DeviceRead& r = a.plan.reads[k];
  const uint32_t got = a.state[k].got;
  engine_->submit({Landing(a, k) + got, r.length - got, r.offset + got, (uint64_t{a.id} << 32) | k});
  a.stats.device_reads++;
}

// Handles one completion of read k; returns true when the read is finished (done or failed),
// false when a remainder or retry was issued.
bool Reader::Complete(Active& a, size_t k, int64_t res) {
  const FlashFile& f = *file_;
  const DeviceRead& r = a.plan.reads[k];
  InFlight& s = a.state[k];
  const uint64_t want_end = std::min<uint64_t>(r.offset + r.length, f.size());
  if (!a.error) {
    if (res == -EINTR || res == -EAGAIN) {
      Issue(a, k);
      return false;
    }
    if (res > 0) {
      s.got += static_cast<uint32_t>(res);
      if (r.offset + s.got < want_end) {
        Issue(a, k);  // a short read before EOF: read the rest
        return false;
      }
    }
    if (res < 0) {
      a.error = std::make_exception_ptr(IoError("FLASH_IO", f.path() + ": read of " + std::to_string(r.length - s.got) +
                                                                 " bytes at offset " + std::to_string(r.offset + s.got) +
                                                                 " failed: " + std::strerror(static_cast<int>(-res)),
                                                  static_cast<int>(-res)));
    } else if (res == 0 && r.offset + s.got < want_end) {
      a.error = std::make_exception_ptr(IoError("FLASH_IO", f.path() + ": unexpected end of file at offset " +
                                                                 std::to_string(r.offset + s.got) + ", size " +
                                                                 std::to_string(f.size())));
    }
  }
  a.stats.bytes_read += s.got;
  if (!a.error) {
    try {
      const uint8_t* data = Landing(a, k);
      Verify(a.batch.sums, r.offset, data, s.got, a.stats);
      if (s.slot == kNoSlot) {
        a.stats.in_place_reads++;
      } else {
        for (uint32_t p = r.first_piece; p < r.first_piece + r.n_pieces; p++) {
          const Piece& pc = a.plan.pieces[p];
          std::memcpy(pc.dst, data + pc.read_offset, pc.length);
        }
      }
      f.drop_cached(r.offset, s.got);
      Land(a, k);
    } catch (...) {
      a.error = std::current_exception();
    }
  }
  if (s.slot != kNoSlot) free_slots_.push_back(s.slot);
  return true;
}

void Reader::Land(Active& a, size_t k) {
  const LandingBoard& board = a.batch.board;
  if (!board.left) return;
  const DeviceRead& r = a.plan.reads[k];
  for (uint32_t p = r.first_piece; p < r.first_piece + r.n_pieces; p++) {
    if (board.left[a.plan.pieces[p].req].fetch_sub(1, std::memory_order_acq_rel) == 1) a.landed = true;
  }
}

void Reader::FailBoard(Active& a) {
  const LandingBoard& board = a.batch.board;
  if (!board.left) return;
  for (size_t i = 0; i < board.n; i++) board.left[i].store(0, std::memory_order_release);
  if (board.waker) board.waker->notify();
}

bool Reader::LandsInPlace(const ReadPlan& plan, size_t k) {
  const DeviceRead& r = plan.reads[k];
  if (r.n_pieces != 1) return false;
  const Piece& p = plan.pieces[r.first_piece];
  return p.read_offset == 0 && p.length == r.length && reinterpret_cast<uintptr_t>(p.dst) % kIoAlign == 0;
}

uint8_t* Reader::Landing(const Active& a, size_t k) const {
  const unsigned slot = a.state[k].slot;
  if (slot == kNoSlot) return a.plan.pieces[a.plan.reads[k].first_piece].dst;
  return staging_.data() + static_cast<size_t>(slot) * opts_.max_read;
}

void Reader::Verify(const PageChecksums& sums, uint64_t offset, const uint8_t* data, uint64_t got, ReadStats& st) const {
  if (sums.pages == 0) return;
  const uint64_t region_end = std::min(sums.base + sums.pages * kIoAlign, file_->size());
  const uint64_t lo = std::max(offset, sums.base), hi = std::min(offset + got, region_end);
  // offset and base are both page-aligned, so lo starts a page.
  for (uint64_t p = lo; p < hi; p += kIoAlign) {
    const uint64_t len = std::min<uint64_t>(kIoAlign, region_end - p);
    const uint64_t index = (p - sums.base) / kIoAlign;
    const uint32_t crc = Crc32c(data + (p - offset), len);
    if (crc != sums.crcs[index]) {
      throw IoError("FLASH_CHECKSUM", file_->path() + ": page at file offset " + std::to_string(p) + " (region page " +
                                          std::to_string(index) + ") has crc32c " + Hex(crc) + ", expected " +
                                          Hex(sums.crcs[index]));
    }
    st.pages_verified++;
  }
}

}  // namespace activeflow
