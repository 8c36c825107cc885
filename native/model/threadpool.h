// A small fork-join pool. The calling thread is worker 0, so one thread means no pool at all.
// Workers spin briefly and then sleep on a condition variable: on 2-vCPU machines a pool that
// only spins fights Node's own threads (llama.cpp's did, ~10x slower with 2 threads).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace activeflow {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }
  // Runs fn(ith, nth) on every worker (ith in [0, nth)) and returns when all are done.
  void run(const std::function<void(int, int)>& fn);

 private:
  void worker(int ith);

  int n_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
};

// Splits [0, n) into nth contiguous chunks, each a multiple of `align` except the last.
inline void SplitRange(int64_t n, int ith, int nth, int64_t align, int64_t* begin, int64_t* end) {
  int64_t per = (n + nth - 1) / nth;
  per = (per + align - 1) / align * align;
  int64_t b = per * ith;
  int64_t e = b + per;
  *begin = b < n ? b : n;
  *end = e < n ? e : n;
}

}  // namespace activeflow
