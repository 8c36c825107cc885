#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"

namespace activeflow {

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ModelError("ENOENT_MODEL", path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw ModelError("NATIVE", path + ": cannot stat: " + std::strerror(e));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    throw ModelError("GGUF_EMPTY", path + ": file is empty");
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw ModelError("NATIVE", path + ": cannot map: " + std::strerror(e));
  // The dense engine reads every weight every token: ask for the whole file up front.
  ::madvise(p, size_, MADV_WILLNEED);
  data_ = static_cast<uint8_t*>(p);
}

void MappedFile::release(size_t offset, size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t begin = (offset + page - 1) / page * page;
  const size_t end = (offset + bytes) / page * page;
  if (end > begin) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);
}

HugeBuffer::HugeBuffer(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  size_ = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw ModelError("NATIVE", "cannot allocate " + std::to_string(size_ >> 20) + " MiB for the packed weights: " +
                                   std::strerror(errno));
  }
  ::madvise(p, size_, MADV_HUGEPAGE);  // advice only: without THP it is 4 KiB pages
  data_ = static_cast<uint8_t*>(p);
}

HugeBuffer::~HugeBuffer() {
  if (data_) ::munmap(data_, size_);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

}  // namespace activeflow
