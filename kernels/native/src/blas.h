// Single-precision GEMM: cblas_sgemm from a BLAS found at load time (dlopen). Where none loaded,
// or a shape exceeds its 32-bit interface, matmul.cc uses our own kernel (gemm_fallback.cc).
// Either way one call runs on the calling thread only; matmul.cc does the threading.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace aligner::blas {

// C[m, n] = op(A) · op(B), row-major, beta = 0. op(A) is [m, k] (A is [k, m] when ta); op(B) is
// [k, n] (B is [n, k] when tb). lda/ldb/ldc are row strides in elements. k ≥ 1, m, n ≥ 1.
using GemmFn = void (*)(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb,
                        float* C, i64 ldc);

// Which library to load when ALIGN_BLAS does not name one: `path` (the measured choice,
// .tools/blas/choice.json, read by kernels/native-backend.ts), with `env` set for the load only
// (OPENBLAS_CORETYPE=…: OpenBLAS reads it in its load-time constructor). Variables already set
// are left as they are. `origin` starts the error message when the library cannot be used.
// An empty path means: search the system's libraries.
struct Request {
  std::string path;
  std::string origin;
  std::vector<std::pair<std::string, std::string>> env;
};

// The loaded library: family "openblas", "mkl", "other" (another CBLAS) or "fallback" (none, our
// own GEMM); its version; its kernel family (OpenBLAS's core name, MKL's code path); the widest
// vector ISA those kernels use ("avx512", "avx2", "baseline" below AVX2, "unknown" when the name is
// not one we know); and the file it was loaded from.
struct Core {
  std::string family = "fallback";
  std::string version;
  std::string core;
  std::string isa = "unknown";
  std::string path;
};

// Loads a BLAS unless `disable` (ALIGN_DISABLE_BLAS=1): the library ALIGN_BLAS names (a path; an
// OpenBLAS, scipy-openblas with its `scipy_` symbol prefix, or MKL's libmkl_rt), else request.path,
// else the system's (also when ALIGN_BLAS=system). Only the first call loads. Returns "" or why
// the named library could not be used (never a silent fallback).
std::string init(bool disable, const Request& request);
// The loaded BLAS's GEMM (32-bit sizes: the caller checks they fit), or null when none loaded.
GemmFn gemm();
// One line naming the family and its kernels: OpenBLAS's config string (with the core), "oneMKL
// 2026.2 (AVX512_E1 code path, sequential)", "CBLAS <file name>" for another, or "fallback".
std::string info();
const Core& core();

// OpenBLAS's core name (openblas_get_corename, any case) → ISA of its kernels; MKL's code path
// (mkl_cbwr_get_auto_branch) → its name and ISA. Unknown names and codes give "unknown".
const char* openblas_core_isa(const std::string& core);
std::pair<std::string, const char*> mkl_branch(int code);

}  // namespace aligner::blas
