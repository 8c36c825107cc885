#include "io/flash_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/aligned_buffer.h"
#include "io/io_error.h"

namespace activeflow {

namespace {

// Some filesystems accept O_DIRECT at open() and refuse it at read() with EINVAL; one aligned
// read of the first page tells.
bool DirectReadWorks(int fd, uint64_t size) {
  if (size == 0) return true;
  AlignedBuffer page(kIoAlign);
  ssize_t r = ::pread(fd, page.data(), kIoAlign, 0);
  return !(r < 0 && errno == EINVAL);
}

// ACTIVEFLOW_FLASH_REFUSE_DIRECT=1 makes open() behave as on a filesystem that refuses O_DIRECT, so
// tests cover the fallback on any machine (tmpfs accepts O_DIRECT since Linux 6.6).
bool DirectRefusedByEnv() {
  const char* v = std::getenv("ACTIVEFLOW_FLASH_REFUSE_DIRECT");
  return v && std::strcmp(v, "1") == 0;
}

}  // namespace

FlashFile::FlashFile(const std::string& path, bool direct) : path_(path) {
  if (direct) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd_ >= 0 && DirectRefusedByEnv()) {
      ::close(fd_);
      fd_ = -1;
      errno = EINVAL;
    }
    if (fd_ < 0 && errno != EINVAL) {
      throw IoError("FLASH_IO", path + ": cannot open: " + std::strerror(errno));
    }
    mode_ = fd_ >= 0 ? FlashMode::kDirect : FlashMode::kBuffered;
  }
  if (fd_ < 0) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError("FLASH_IO", path + ": cannot open: " + std::strerror(errno));
    mode_ = FlashMode::kBuffered;
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    int e = errno;
    ::close(fd_);
    throw IoError("FLASH_IO", path + ": cannot stat: " + std::strerror(e));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (mode_ == FlashMode::kDirect && !DirectReadWorks(fd_, size_)) {
    ::close(fd_);
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError("FLASH_IO", path + ": cannot open: " + std::strerror(errno));
    mode_ = FlashMode::kBuffered;
  }
  if (mode_ == FlashMode::kBuffered) ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
}

FlashFile::~FlashFile() {
  if (fd_ >= 0) ::close(fd_);
}

void FlashFile::drop_cached(uint64_t offset, uint64_t length) const {
  if (mode_ == FlashMode::kBuffered) {
    ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_DONTNEED);
  }
}

}  // namespace activeflow
