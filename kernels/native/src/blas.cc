// dlopen of a CBLAS. Linking OpenBLAS directly would make the addon unloadable where it is not
// installed; dlopen lets the same build run everywhere and pick BLAS up when present.
// OpenBLAS is told to use one thread: its own pool busy-waits and fights ours on small machines,
// and we split GEMMs across our pool anyway (matmul.cc).
#include "blas.h"

#include <dlfcn.h>

#include <climits>
#include <mutex>

namespace aligner::blas {

namespace {

// CBLAS enum values (cblas.h): CblasRowMajor, CblasNoTrans, CblasTrans.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using SgemmFn = void (*)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc);
using SetThreadsFn = void (*)(int);
using GetConfigFn = char* (*)();

std::once_flag g_once;
SgemmFn g_sgemm = nullptr;
std::string g_info = "fallback";

void blas_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb, float* C,
               i64 ldc) {
  // The loaded library has a 32-bit integer interface.
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX) {
    gemm_fallback(ta, tb, m, n, k, A, lda, B, ldb, C, ldc);
    return;
  }
  g_sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m), static_cast<int>(n),
          static_cast<int>(k), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), 0.0f, C,
          static_cast<int>(ldc));
}

void load(bool disable) {
  if (disable) return;
  const char* candidates[] = {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"};
  for (const char* name : candidates) {
    void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
    if (!sgemm) {
      dlclose(lib);
      continue;
    }
    if (auto set_threads = reinterpret_cast<SetThreadsFn>(dlsym(lib, "openblas_set_num_threads"))) set_threads(1);
    auto get_config = reinterpret_cast<GetConfigFn>(dlsym(lib, "openblas_get_config"));
    g_info = get_config ? std::string(get_config()) : std::string(name);
    g_sgemm = sgemm;
    return;
  }
}

}  // namespace

void init(bool disable) {
  std::call_once(g_once, [disable] { load(disable); });
}

GemmFn gemm() {
  return g_sgemm ? blas_gemm : gemm_fallback;
}

std::string info() {
  return g_info;
}

}  // namespace aligner::blas
