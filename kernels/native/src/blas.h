// Single-precision GEMM: cblas_sgemm from a BLAS found at load time (dlopen). Where none loaded,
// or a shape exceeds its 32-bit interface, matmul.cc uses our own kernel (gemm_fallback.cc).
// Either way one call runs on the calling thread only; matmul.cc does the threading.
#pragma once

#include <string>

#include "common.h"

namespace aligner::blas {

// C[m, n] = op(A) · op(B), row-major, beta = 0. op(A) is [m, k] (A is [k, m] when ta); op(B) is
// [k, n] (B is [n, k] when tb). lda/ldb/ldc are row strides in elements. k ≥ 1, m, n ≥ 1.
using GemmFn = void (*)(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb,
                        float* C, i64 ldc);

// Loads a BLAS unless `disable` (ALIGN_DISABLE_BLAS=1): the library ALIGN_BLAS names (a path; an
// OpenBLAS, scipy-openblas with its `scipy_` symbol prefix, or MKL's libmkl_rt), else the system's.
// Safe to call more than once. Returns "" or why ALIGN_BLAS could not be used (never a silent fallback).
std::string init(bool disable);
// The loaded BLAS's GEMM (32-bit sizes: the caller checks they fit), or null when none loaded.
GemmFn gemm();
// openblas_get_config() when available, the library name for another CBLAS, or "fallback".
std::string info();

}  // namespace aligner::blas
