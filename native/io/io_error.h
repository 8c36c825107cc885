// The error type of the flash I/O layer: a C++ exception carrying a stable code that the
// binding turns into a JS error's `code` ("FLASH_IO", "FLASH_CHECKSUM", "BAD_ARGUMENT").
#pragma once
#include <stdexcept>
#include <string>

namespace activeflow {

struct IoError : std::runtime_error {
  std::string code;
  int sys_errno;  // the errno behind a failed system call, else 0
  IoError(std::string c, const std::string& msg, int e = 0)
      : std::runtime_error(msg), code(std::move(c)), sys_errno(e) {}
};

}  // namespace activeflow
