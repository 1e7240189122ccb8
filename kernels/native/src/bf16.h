// bf16 ↔ f32 conversion. Rounding matches roundToBf16 in kernels/dtype.ts: nearest, ties to
// even, NaN stays NaN (a quiet NaN, since truncating a NaN's payload could turn it into Inf).
#pragma once

#include <cstdint>
#include <cstring>

namespace aligner {

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0)
    return static_cast<uint16_t>(((bits >> 16) & 0x8000u) | 0x7fc0u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace aligner
