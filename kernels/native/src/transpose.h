// An 8×8 transpose in registers, for the kernels that move blocks (layout.cc's permute, the key
// tiles of attention.cc). Built per ISA like simd.h.
#pragma once

#include <cstdint>

#include "common.h"
#include "isa.h"

#if !defined(ALIGNER_ISA_BASELINE)
#include <immintrin.h>
#endif

namespace aligner::ALIGNER_ISA_NS::simd {

// dst[c][r] = src[r][c] for an 8×8 block of 4-byte elements, in registers: one pass over 8 source
// rows instead of 64 strided loads (with power-of-two strides those all land in one L1 set).
// Shuffles move bits only, so any 4-byte payload (i32, NaN) is copied exactly. The AVX2 shuffles
// serve the avx512 build too; the baseline build copies element by element.
inline void transpose8x8(const uint32_t* src, i64 src_stride, uint32_t* dst, i64 dst_stride) {
#if defined(ALIGNER_ISA_BASELINE)
  for (int r = 0; r < 8; r++)
    for (int c = 0; c < 8; c++) dst[c * dst_stride + r] = src[r * src_stride + c];
#else
  __m256 r[8], t[8];
  for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + k * src_stride));
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; k++) {
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + k * dst_stride), _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + (k + 4) * dst_stride),
                     _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
#endif
}

}  // namespace aligner::ALIGNER_ISA_NS::simd
