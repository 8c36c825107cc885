// The fallback engine: `depth` threads each running blocking pread, fed from one queue.
// Threads are cheap here because they sleep in the kernel for the whole read.
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "io/io_engine.h"

namespace activeflow {

namespace {

class PreadPoolEngine final : public IoEngine {
 public:
  PreadPoolEngine(int fd, unsigned depth) : fd_(fd), depth_(depth) {
    threads_.reserve(depth);
    for (unsigned i = 0; i < depth; i++) threads_.emplace_back([this] { Work(); });
  }

  ~PreadPoolEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  const char* name() const override { return "pread"; }
  unsigned depth() const override { return depth_; }

  void submit(const IoOp& op) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      todo_.push_back(op);
    }
    work_cv_.notify_one();
  }

  size_t reap(IoDone* out, size_t max) override {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return !done_.empty(); });
    size_t n = 0;
    while (n < max && !done_.empty()) {
      out[n++] = done_.front();
      done_.pop_front();
    }
    return n;
  }

 private:
  void Work() {
    for (;;) {
      IoOp op;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [this] { return stop_ || !todo_.empty(); });
        if (stop_) return;
        op = todo_.front();
        todo_.pop_front();
      }
      ssize_t r;
      do {
        r = ::pread(fd_, op.buf, op.length, static_cast<off_t>(op.offset));
      } while (r < 0 && errno == EINTR);
      const int64_t result = r < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(r);
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_.push_back({op.tag, result});
      }
      done_cv_.notify_one();
    }
  }

  int fd_;
  unsigned depth_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<IoOp> todo_;
  std::deque<IoDone> done_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

}  // namespace

std::unique_ptr<IoEngine> MakePreadPoolEngine(int fd, unsigned depth) {
  return std::make_unique<PreadPoolEngine>(fd, depth);
}

}  // namespace activeflow
