// Shared basics of the CPU backend: the error type that crosses into JS, and integer aliases.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace aligner {

using i64 = int64_t;

// An error whose `name` becomes the JS error's name, so kernels/errors.ts can map it to its typed
// class (IndexError, ShapeError, DTypeError, OutOfMemoryError, NativeError).
struct KernelError : std::runtime_error {
  std::string name;
  KernelError(std::string error_name, const std::string& message)
      : std::runtime_error(message), name(std::move(error_name)) {}
};

[[noreturn]] inline void fail(const char* name, const std::string& message) {
  throw KernelError(name, message);
}

// Element types the native backend stores. The numbering is shared with kernels/native-backend.ts.
enum class DType : int { f32 = 0, bf16 = 1, i32 = 2 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32:
      return "f32";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
  }
  return "?";
}

inline size_t dtype_size(DType d) {
  return d == DType::bf16 ? 2 : 4;
}

inline i64 ceil_div(i64 a, i64 b) {
  return (a + b - 1) / b;
}

}  // namespace aligner
