#include "io/reader.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
  engine_ = MakeEngine(*file_, opts_.backend, opts_.queue_depth);
  staging_ = AlignedBuffer(static_cast<size_t>(opts_.queue_depth) * opts_.max_read);
  loader_ = std::thread([this] { Loop(); });
}

Reader::~Reader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  loader_.join();
}

uint64_t Reader::submit(std::vector<ReadReq> reqs, const PageChecksums* sums) {
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
    queue_.push_back({ticket, std::move(reqs), sums ? *sums : PageChecksums{}});
  }
  work_cv_.notify_one();
  return ticket;
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

ReadStats Reader::read(const ReadReq* reqs, size_t n, const PageChecksums* sums) {
  return wait(submit(std::vector<ReadReq>(reqs, reqs + n), sums));
}

void Reader::Loop() {
  for (;;) {
    Batch b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) {
        // Fail what is still queued so no waiter blocks forever.
        for (const Batch& q : queue_) {
          Result& r = results_[q.ticket];
          r.error = std::make_exception_ptr(IoError("FLASH_IO", file_->path() + ": reader closed before the read ran"));
          r.done = true;
        }
        queue_.clear();
        done_cv_.notify_all();
        return;
      }
      b = std::move(queue_.front());
      queue_.pop_front();
    }
    Result res;
    try {
      res.stats = Run(b);
    } catch (...) {
      res.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      res.done = true;
      results_[b.ticket] = std::move(res);
    }
    done_cv_.notify_all();
  }
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

ReadStats Reader::Run(const Batch& b) {
  const double t0 = Now();
  ReadStats st;
  const FlashFile& f = *file_;
  ReadPlan plan = PlanReads(b.reqs.data(), b.reqs.size(), opts_.max_gap, opts_.max_read, f.size());
  st.bytes_requested = plan.bytes_requested;

  const unsigned depth = opts_.queue_depth;
  std::vector<unsigned> free_slots;  // LIFO, so small batches keep touching the same pages
  for (unsigned i = depth; i-- > 0;) free_slots.push_back(i);
  struct InFlight {
    unsigned slot;
    uint32_t got;
  };
  std::vector<InFlight> state(plan.reads.size());
  std::vector<IoDone> done(depth);
  std::exception_ptr error;
  size_t next = 0, in_flight = 0;

  auto slot_ptr = [&](unsigned slot) { return staging_.data() + static_cast<size_t>(slot) * opts_.max_read; };
  auto issue = [&](size_t k) {
    const DeviceRead& r = plan.reads[k];
    const uint32_t got = state[k].got;
    engine_->submit({slot_ptr(state[k].slot) + got, r.length - got, r.offset + got, k});
    st.device_reads++;
  };

  while (next < plan.reads.size() || in_flight > 0) {
    while (!error && next < plan.reads.size() && !free_slots.empty()) {
      state[next] = {free_slots.back(), 0};
      free_slots.pop_back();
      issue(next++);
      in_flight++;
    }
    if (in_flight == 0) break;
    const size_t n = engine_->reap(done.data(), done.size());
    for (size_t i = 0; i < n; i++) {
      const size_t k = done[i].tag;
      const DeviceRead& r = plan.reads[k];
      InFlight& s = state[k];
      const int64_t res = done[i].result;
      const uint64_t want_end = std::min<uint64_t>(r.offset + r.length, f.size());
      if (res < 0 && (res == -EINTR || res == -EAGAIN) && !error) {
        issue(k);
        continue;
      }
      if (res < 0 && !error) {
        error = std::make_exception_ptr(IoError("FLASH_IO", f.path() + ": read of " + std::to_string(r.length - s.got) +
                                                               " bytes at offset " + std::to_string(r.offset + s.got) +
                                                               " failed: " + std::strerror(static_cast<int>(-res)),
                                                static_cast<int>(-res)));
      }
      if (res > 0) s.got += static_cast<uint32_t>(res);
      if (res > 0 && r.offset + s.got < want_end && !error) {
        issue(k);  // a short read before EOF: read the rest
        continue;
      }
      if (res == 0 && r.offset + s.got < want_end && !error) {
        error = std::make_exception_ptr(IoError("FLASH_IO", f.path() + ": unexpected end of file at offset " +
                                                               std::to_string(r.offset + s.got) + ", size " +
                                                               std::to_string(f.size())));
      }
      in_flight--;
      st.bytes_read += s.got;
      if (!error) {
        try {
          const uint8_t* data = slot_ptr(s.slot);
          Verify(b.sums, r.offset, data, s.got, st);
          for (uint32_t p = r.first_piece; p < r.first_piece + r.n_pieces; p++) {
            const Piece& pc = plan.pieces[p];
            std::memcpy(pc.dst, data + pc.read_offset, pc.length);
          }
          f.drop_cached(r.offset, s.got);
        } catch (...) {
          error = std::current_exception();
        }
      }
      free_slots.push_back(s.slot);
    }
  }
  if (error) std::rethrow_exception(error);
  st.io_seconds = Now() - t0;
  return st;
}

}  // namespace activeflow
