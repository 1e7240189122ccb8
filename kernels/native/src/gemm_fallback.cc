// Fallback SGEMM when no BLAS is installed: the Goto/BLIS structure (pack a KC×NC panel of B and an
// MC×KC block of A, then a 6×16 register-tiled micro-kernel), single-threaded.
//
// Each C element is Σ over KC-sized slices of k in order, each slice a sequential FMA chain, so
// its value depends only on k, never on where it sits in the matrix; that is what makes matmul.cc's
// split of M or N across threads invisible in the results. Padding in packed panels is zero and
// only ever reaches padding rows/columns of the tile, which are not stored.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "blas.h"

namespace aligner::blas {

namespace {

constexpr i64 MR = 6, NR = 16;
constexpr i64 KC = 256, MC = 72, NC = 4080;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Per-thread packing buffers, allocated once at their largest size.
float* scratch(std::unique_ptr<float, FreeDeleter>& slot, size_t floats) {
  if (!slot) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, floats * sizeof(float)) != 0) throw std::bad_alloc();
    slot.reset(static_cast<float*>(p));
  }
  return slot.get();
}

// op(A)[i0.., p0..] block of mc×kc into MR-row micro-panels: panel[p][r].
void pack_a(bool ta, const float* A, i64 lda, i64 i0, i64 p0, i64 mc, i64 kc, float* out) {
  for (i64 ir = 0; ir < mc; ir += MR) {
    i64 mr = std::min(MR, mc - ir);
    for (i64 p = 0; p < kc; p++) {
      for (i64 r = 0; r < MR; r++) {
        i64 i = i0 + ir + r, k = p0 + p;
        out[p * MR + r] = r < mr ? (ta ? A[k * lda + i] : A[i * lda + k]) : 0.0f;
      }
    }
    out += kc * MR;
  }
}

// op(B)[p0.., j0..] block of kc×nc into NR-column micro-panels: panel[p][c].
void pack_b(bool tb, const float* B, i64 ldb, i64 p0, i64 j0, i64 kc, i64 nc, float* out) {
  for (i64 jr = 0; jr < nc; jr += NR) {
    i64 nr = std::min(NR, nc - jr);
    for (i64 p = 0; p < kc; p++) {
      i64 k = p0 + p;
      if (!tb && nr == NR) {
        std::copy(B + k * ldb + j0 + jr, B + k * ldb + j0 + jr + NR, out + p * NR);
        continue;
      }
      for (i64 c = 0; c < NR; c++) {
        i64 j = j0 + jr + c;
        out[p * NR + c] = c < nr ? (tb ? B[j * ldb + k] : B[k * ldb + j]) : 0.0f;
      }
    }
    out += kc * NR;
  }
}

// C tile (mr×nr valid of 6×16) = (accumulate ? C : 0) + Σ_p a[p][:] ⊗ b[p][:].
void micro_kernel(i64 kc, const float* a, const float* b, float* C, i64 ldc, i64 mr, i64 nr, bool accumulate) {
  __m256 c[MR][2];
  for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
  for (i64 p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(b + p * NR), b1 = _mm256_load_ps(b + p * NR + 8);
    for (int r = 0; r < MR; r++) {
      __m256 av = _mm256_broadcast_ss(a + p * MR + r);
      c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
    }
  }
  if (mr == MR && nr == NR) {
    for (int r = 0; r < MR; r++) {
      float* row = C + r * ldc;
      __m256 v0 = c[r][0], v1 = c[r][1];
      if (accumulate) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(row + 8), v1);
      }
      _mm256_storeu_ps(row, v0);
      _mm256_storeu_ps(row + 8, v1);
    }
    return;
  }
  alignas(32) float tile[MR][NR];
  for (int r = 0; r < MR; r++) {
    _mm256_store_ps(tile[r], c[r][0]);
    _mm256_store_ps(tile[r] + 8, c[r][1]);
  }
  for (i64 r = 0; r < mr; r++)
    for (i64 j = 0; j < nr; j++) C[r * ldc + j] = accumulate ? C[r * ldc + j] + tile[r][j] : tile[r][j];
}

}  // namespace

void gemm_fallback(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb, float* C,
                   i64 ldc) {
  thread_local std::unique_ptr<float, FreeDeleter> a_buf, b_buf;
  float* pa = scratch(a_buf, MC * KC);
  float* pb = scratch(b_buf, KC * NC);
  for (i64 jc = 0; jc < n; jc += NC) {
    i64 nc = std::min(NC, n - jc);
    for (i64 pc = 0; pc < k; pc += KC) {
      i64 kc = std::min(KC, k - pc);
      pack_b(tb, B, ldb, pc, jc, kc, nc, pb);
      for (i64 ic = 0; ic < m; ic += MC) {
        i64 mc = std::min(MC, m - ic);
        pack_a(ta, A, lda, ic, pc, mc, kc, pa);
        for (i64 jr = 0; jr < nc; jr += NR) {
          for (i64 ir = 0; ir < mc; ir += MR) {
            micro_kernel(kc, pa + ir * kc, pb + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir),
                         std::min(NR, nc - jr), pc > 0);
          }
        }
      }
    }
  }
}

}  // namespace aligner::blas
