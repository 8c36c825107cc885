// A small fork-join pool. The calling thread is worker 0, so one thread means no pool at all.
// Workers spin briefly and then sleep on a condition variable: on 2-vCPU machines a pool that
// only spins fights Node's own threads (llama.cpp's did, ~10x slower with 2 threads).
//
// Two kinds of job. run(fn) calls fn(ith, nth) once on every worker and waits for all of
// them. for_units(n, fn) hands out units 0..n-1 from a shared counter; the caller works too,
// and a worker that has not joined by the time the units run out is not waited for, so a
// worker the OS has descheduled (another process on a 2-vCPU machine) costs nothing: the
// caller does the work alone instead of waiting a scheduler time slice at every join.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
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
  // Runs fn(unit, slot) for every unit in [0, units), each once, on the caller and whichever
  // workers join in time; slot in [0, size()) is the participant's index (for per-thread
  // scratch). Returns when every unit is done.
  void for_units(int64_t units, const std::function<void(int64_t, int)>& fn);

 private:
  void worker(int ith);
  void publish();
  void claim_units(int slot);
  void close_and_drain();

  int n_;
  std::vector<std::thread> threads_;
  // The current job; written by the caller only while it is closed and no worker is inside
  // (active_ == 0), read by workers only while counted in active_ and it is open.
  const std::function<void(int, int)>* all_ = nullptr;
  const std::function<void(int64_t, int)>* units_fn_ = nullptr;
  int64_t units_ = 0;
  std::atomic<int64_t> next_unit_{0};
  // (job generation << 1) | open: one word, so a worker sees which job is open, or that the
  // last one has closed, in a single load.
  std::atomic<uint64_t> state_{0};
  std::atomic<int> active_{0};
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
