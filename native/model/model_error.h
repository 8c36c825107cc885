// The model code's exception type.
#pragma once

#include <stdexcept>
#include <string>

namespace activeflow {

// Thrown by the model code; the binding turns `code` into the JS error's code.
struct ModelError : std::runtime_error {
  std::string code;
  ModelError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

}  // namespace activeflow
