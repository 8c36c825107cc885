// The device side of the reader: something that runs up to `depth` positioned reads at once
// and reports completions. Two implementations: io_uring through raw syscalls (liburing is
// not guaranteed to be installed) and a pread thread pool for kernels or sandboxes that
// refuse io_uring (ENOSYS, or EPERM from seccomp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace activeflow {

struct IoOp {
  uint8_t* buf;
  uint32_t length;
  uint64_t offset;
  uint64_t tag;
};

struct IoDone {
  uint64_t tag;
  int64_t result;  // bytes read, or -errno
};

class IoEngine {
 public:
  virtual ~IoEngine() = default;
  virtual const char* name() const = 0;
  // Queues one read; the caller keeps at most depth() reads outstanding.
  virtual void submit(const IoOp& op) = 0;
  // Starts everything queued and returns up to `max` completions, blocking for at least one.
  virtual size_t reap(IoDone* out, size_t max) = 0;
  virtual unsigned depth() const = 0;
};

// Throws IoError("FLASH_IO") whose sys_errno says why io_uring is unavailable.
std::unique_ptr<IoEngine> MakeIoUringEngine(int fd, unsigned depth);
std::unique_ptr<IoEngine> MakePreadPoolEngine(int fd, unsigned depth);

}  // namespace activeflow
