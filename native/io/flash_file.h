// A read-only file opened for direct I/O. O_DIRECT keeps weight bytes out of the page cache
// (the budget benchmark's cgroup charges page cache); where the filesystem refuses it
// (tmpfs, some FUSE) the file falls back to buffered reads followed by
// posix_fadvise(DONTNEED), and says so through mode().
#pragma once
#include <cstdint>
#include <string>

namespace activeflow {

enum class FlashMode { kDirect, kBuffered };

class FlashFile {
 public:
  // Throws IoError("FLASH_IO") when the file cannot be opened or stat'ed.
  explicit FlashFile(const std::string& path, bool direct = true);
  ~FlashFile();
  FlashFile(const FlashFile&) = delete;
  FlashFile& operator=(const FlashFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  FlashMode mode() const { return mode_; }
  const char* mode_name() const { return mode_ == FlashMode::kDirect ? "direct" : "buffered"; }
  const std::string& path() const { return path_; }
  // Drops [offset, offset + length) from the page cache after a buffered read (no-op when direct).
  void drop_cached(uint64_t offset, uint64_t length) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  FlashMode mode_ = FlashMode::kBuffered;
};

}  // namespace activeflow
