// Shared by the libFuzzer targets (scripts/fuzz-native.mjs builds them into build/Fuzz): the
// fuzz input's file bytes as a memfd the library opens by path, as it opens a model file.
#pragma once
#include <sys/mman.h>
#include <unistd.h>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace activeflow::fuzz {

// A file holding `bytes`, reachable as /proc/self/fd/<n>; closed when this goes.
class MemFile {
 public:
  MemFile(const uint8_t* bytes, size_t n) {
    fd_ = memfd_create("af-fuzz", 0);
    if (fd_ < 0) std::abort();
    size_t done = 0;
    while (done < n) {
      ssize_t w = write(fd_, bytes + done, n - done);
      if (w <= 0) std::abort();
      done += static_cast<size_t>(w);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace activeflow::fuzz
