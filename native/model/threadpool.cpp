#include "model/threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define AF_PAUSE() _mm_pause()
#else
#define AF_PAUSE() ((void)0)
#endif

namespace activeflow {

// How long a worker spins before sleeping: long enough to cover the gap between two ops of
// one token (a few microseconds), short enough not to steal a core from Node between tokens.
static constexpr int kSpinIterations = 20000;
// Spins of a caller waiting for a worker inside a job before it yields the core: a waited-for
// worker may be descheduled, and on 2 vCPUs yielding is what lets it run.
static constexpr int kYieldAfter = 2000;

ThreadPool::ThreadPool(int threads) : n_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < n_; i++) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    state_.fetch_add(2);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

// Opens the job written into the fields (a new generation) and wakes the workers.
void ThreadPool::publish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.store(((state_.load(std::memory_order_relaxed) >> 1) + 1) << 1 | 1, std::memory_order_seq_cst);
  }
  wake_.notify_all();
}

// Closes the job and waits until no worker is inside it, so its fields may be rewritten.
void ThreadPool::close_and_drain() {
  state_.fetch_and(~uint64_t{1}, std::memory_order_seq_cst);
  for (int spin = 0; active_.load(std::memory_order_seq_cst) != 0; spin++) {
    if (spin < kYieldAfter) AF_PAUSE();
    else std::this_thread::yield();
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_ == 1) {
    fn(0, 1);
    return;
  }
  all_ = &fn;
  units_fn_ = nullptr;
  pending_.store(n_ - 1, std::memory_order_release);
  publish();
  fn(0, n_);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; spin++) {
    if (spin < kSpinIterations) {
      AF_PAUSE();
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }
  close_and_drain();
  all_ = nullptr;
}

void ThreadPool::claim_units(int slot) {
  for (int64_t u = next_unit_.fetch_add(1, std::memory_order_relaxed); u < units_;
       u = next_unit_.fetch_add(1, std::memory_order_relaxed)) {
    (*units_fn_)(u, slot);
  }
}

void ThreadPool::for_units(int64_t units, const std::function<void(int64_t, int)>& fn) {
  if (units <= 0) return;
  if (n_ == 1 || units == 1) {
    for (int64_t u = 0; u < units; u++) fn(u, 0);
    return;
  }
  all_ = nullptr;
  units_fn_ = &fn;
  units_ = units;
  next_unit_.store(0, std::memory_order_relaxed);
  publish();
  claim_units(0);
  close_and_drain();
  units_fn_ = nullptr;
}

void ThreadPool::worker(int ith) {
  uint64_t seen = 0;  // generation of the last job this worker joined or found closed
  for (;;) {
    uint64_t st = state_.load(std::memory_order_acquire);
    for (int spin = 0; (st >> 1) == seen && spin < kSpinIterations; spin++) {
      AF_PAUSE();
      st = state_.load(std::memory_order_acquire);
    }
    if ((st >> 1) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return (state_.load(std::memory_order_acquire) >> 1) != seen; });
    }
    if (stop_.load()) return;
    // Join only an open job; while counted in active_ its fields stay as published.
    active_.fetch_add(1, std::memory_order_seq_cst);
    st = state_.load(std::memory_order_seq_cst);
    seen = st >> 1;
    if ((st & 1) == 0) {
      // Closed: the caller finished it alone. Wait for the next one.
      active_.fetch_sub(1, std::memory_order_seq_cst);
      continue;
    }
    if (all_) {
      (*all_)(ith, n_);
      active_.fetch_sub(1, std::memory_order_seq_cst);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_one();
      }
    } else {
      claim_units(ith);
      active_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
}

}  // namespace activeflow
