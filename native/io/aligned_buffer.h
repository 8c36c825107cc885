// A heap buffer aligned to 4 KiB with its size rounded up to 4 KiB, as O_DIRECT requires
// of buffers, offsets and lengths. Move-only; frees itself.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

namespace activeflow {

inline constexpr size_t kIoAlign = 4096;

inline constexpr uint64_t AlignDown(uint64_t x) { return x & ~static_cast<uint64_t>(kIoAlign - 1); }
inline constexpr uint64_t AlignUp(uint64_t x) { return (x + kIoAlign - 1) & ~static_cast<uint64_t>(kIoAlign - 1); }

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) : size_(AlignUp(bytes)) {
    if (size_ == 0) return;
    void* p = nullptr;
    if (posix_memalign(&p, kIoAlign, size_) != 0) throw std::bad_alloc();
    data_ = static_cast<uint8_t*>(p);
  }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;  // a multiple of 4096
};

}  // namespace activeflow
