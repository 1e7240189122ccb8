// Fallback SGEMM when no BLAS is installed: the Goto/BLIS structure (pack a KC×NC panel of B and an
// MC×KC block of A, then a 6×16 register-tiled micro-kernel), single-threaded.
//
// Each C element is Σ over KC-sized slices of k in order, each slice a sequential FMA chain, so
// its value depends only on k, never on where it sits in the matrix; that is what makes matmul.cc's
// split of M or N across threads invisible in the results. Padding in packed panels is zero and
// only ever reaches padding rows/columns of the tile, which are not stored.
#include <algorithm>
#include <cstdlib>
#include <memory>

#include "kernels.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

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
  constexpr i64 kVecs = NR / simd::W;  // vectors per tile row
  simd::V c[MR][kVecs];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < kVecs; v++) c[r][v] = simd::zero();
  for (i64 p = 0; p < kc; p++) {
    simd::V bv[kVecs];
    for (int v = 0; v < kVecs; v++) bv[v] = simd::load(b + p * NR + v * simd::W);
    for (int r = 0; r < MR; r++) {
      simd::V av = simd::set1(a[p * MR + r]);
      for (int v = 0; v < kVecs; v++) c[r][v] = simd::fma(av, bv[v], c[r][v]);
    }
  }
  if (mr == MR && nr == NR) {
    for (int r = 0; r < MR; r++) {
      float* row = C + r * ldc;
      for (int v = 0; v < kVecs; v++) {
        simd::V out = c[r][v];
        if (accumulate) out = simd::load(row + v * simd::W) + out;
        simd::store(row + v * simd::W, out);
      }
    }
    return;
  }
  alignas(64) float tile[MR][NR];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < kVecs; v++) simd::store(tile[r] + v * simd::W, c[r][v]);
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

}  // namespace aligner::ALIGNER_ISA_NS
