// io_uring through the raw syscalls and the kernel header: one submission ring sized to the
// queue depth, IORING_OP_READ into caller buffers, completions reaped from the shared ring.
// Used by one thread at a time (the reader's loader thread).
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <string>

#include "io/io_engine.h"
#include "io/io_error.h"

namespace activeflow {

namespace {

int Setup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}

int Enter(int ring, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(::syscall(__NR_io_uring_enter, ring, to_submit, min_complete, flags, nullptr, 0));
}

// Completions are reaped only by the submitting thread inside io_uring_enter, so the kernel
// need not interrupt it to run completion work (COOP/DEFER_TASKRUN; IPIs are dear in a VM).
// Kernels before 6.1 refuse these flags with EINVAL; the ring is then set up plain.
#ifndef AF_IO_URING_SETUP_FLAGS
#define AF_IO_URING_SETUP_FLAGS (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN)
#endif

class IoUringEngine final : public IoEngine {
 public:
  IoUringEngine(int fd, unsigned depth) : fd_(fd), depth_(depth) {
    io_uring_params p;
    std::memset(&p, 0, sizeof p);
    p.flags = AF_IO_URING_SETUP_FLAGS;
    ring_ = Setup(depth, &p);
    if (ring_ < 0 && errno == EINVAL && p.flags != 0) {
      std::memset(&p, 0, sizeof p);
      ring_ = Setup(depth, &p);
    }
    if (ring_ < 0) {
      const int e = errno;
      throw IoError("FLASH_IO", std::string("io_uring_setup failed: ") + std::strerror(e), e);
    }
    sq_bytes_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_bytes_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sq_bytes_ = cq_bytes_ = std::max(sq_bytes_, cq_bytes_);
    sq_ = Map(sq_bytes_, IORING_OFF_SQ_RING);
    cq_ = single ? sq_ : Map(cq_bytes_, IORING_OFF_CQ_RING);
    sqe_bytes_ = p.sq_entries * sizeof(io_uring_sqe);
    sqes_ = static_cast<io_uring_sqe*>(Map(sqe_bytes_, IORING_OFF_SQES));
    auto* sq = static_cast<uint8_t*>(sq_);
    auto* cq = static_cast<uint8_t*>(cq_);
    sq_tail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  }

  ~IoUringEngine() override { Release(); }

  const char* name() const override { return "io_uring"; }
  unsigned depth() const override { return depth_; }

  void submit(const IoOp& op) override {
    // Only this thread writes the tail, so a plain read of it is current.
    const unsigned tail = *sq_tail_;
    const unsigned idx = tail & sq_mask_;
    io_uring_sqe& s = sqes_[idx];
    std::memset(&s, 0, sizeof s);
    s.opcode = IORING_OP_READ;
    s.fd = fd_;
    s.addr = reinterpret_cast<uint64_t>(op.buf);
    s.len = op.length;
    s.off = op.offset;
    s.user_data = op.tag;
    sq_array_[idx] = idx;
    __atomic_store_n(sq_tail_, tail + 1, __ATOMIC_RELEASE);
    pending_++;
  }

  size_t reap(IoDone* out, size_t max) override {
    for (;;) {
      size_t n = Drain(out, max);
      if (n > 0 && pending_ == 0) return n;
      const unsigned want = n > 0 ? 0 : 1;
      const int r = Enter(ring_, pending_, want, IORING_ENTER_GETEVENTS);
      if (r < 0) {
        const int e = errno;
        if (e == EINTR || e == EAGAIN || e == EBUSY) continue;
        throw IoError("FLASH_IO", std::string("io_uring_enter failed: ") + std::strerror(e));
      }
      pending_ -= static_cast<unsigned>(r);
      if (n > 0) return n + Drain(out + n, max - n);
    }
  }

 private:
  void* Map(size_t bytes, off_t what) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_, what);
    if (p == MAP_FAILED) {
      const int e = errno;
      Release();  // a throwing constructor runs no destructor
      throw IoError("FLASH_IO", std::string("io_uring ring mmap failed: ") + std::strerror(e), e);
    }
    return p;
  }

  void Release() {
    if (sqes_) ::munmap(sqes_, sqe_bytes_);
    if (cq_ && cq_ != sq_) ::munmap(cq_, cq_bytes_);
    if (sq_) ::munmap(sq_, sq_bytes_);
    if (ring_ >= 0) ::close(ring_);
    sqes_ = nullptr, cq_ = sq_ = nullptr, ring_ = -1;
  }

  size_t Drain(IoDone* out, size_t max) {
    unsigned head = *cq_head_;
    const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    size_t n = 0;
    while (head != tail && n < max) {
      const io_uring_cqe& c = cqes_[head & cq_mask_];
      out[n++] = {c.user_data, c.res};
      head++;
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
    return n;
  }

  int fd_;
  unsigned depth_;
  int ring_ = -1;
  unsigned pending_ = 0;  // queued in the SQ, not yet handed to the kernel
  void* sq_ = nullptr;
  void* cq_ = nullptr;
  size_t sq_bytes_ = 0, cq_bytes_ = 0, sqe_bytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace

std::unique_ptr<IoEngine> MakeIoUringEngine(int fd, unsigned depth) {
  return std::make_unique<IoUringEngine>(fd, depth);
}

}  // namespace activeflow
