// dlopen of a CBLAS. Linking OpenBLAS directly would make the addon unloadable where it is not
// installed; dlopen lets the same build run everywhere and pick BLAS up when present.
// OpenBLAS is told to use one thread: its own pool busy-waits and fights ours on small machines,
// and we split GEMMs across our pool anyway (matmul.cc).
#include "blas.h"

#include <dlfcn.h>

#include <cstdlib>
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
std::string g_error;

// A symbol under its plain name, or with scipy-openblas's `scipy_` prefix.
void* sym(void* lib, const char* name) {
  if (void* p = dlsym(lib, name)) return p;
  return dlsym(lib, (std::string("scipy_") + name).c_str());
}

// Takes the library when it has cblas_sgemm: one BLAS thread (our pool splits the GEMMs), its config as info.
bool adopt(void* lib, const char* name) {
  auto sgemm = reinterpret_cast<SgemmFn>(sym(lib, "cblas_sgemm"));
  if (!sgemm) return false;
  if (auto set_threads = reinterpret_cast<SetThreadsFn>(sym(lib, "openblas_set_num_threads"))) set_threads(1);
  if (auto mkl_threads = reinterpret_cast<SetThreadsFn>(dlsym(lib, "MKL_Set_Num_Threads"))) mkl_threads(1);
  auto get_config = reinterpret_cast<GetConfigFn>(sym(lib, "openblas_get_config"));
  g_info = get_config ? std::string(get_config()) : std::string(name);
  g_sgemm = sgemm;
  return true;
}

void blas_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb, float* C,
               i64 ldc) {
  g_sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m), static_cast<int>(n),
          static_cast<int>(k), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), 0.0f, C,
          static_cast<int>(ldc));
}

void load(bool disable) {
  if (disable) return;
  if (const char* path = std::getenv("ALIGN_BLAS"); path && *path) {
    void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      g_error = std::string("ALIGN_BLAS=") + path + ": cannot load it (" + (why ? why : "unknown error") + ")";
    } else if (!adopt(lib, path)) {
      dlclose(lib);
      g_error = std::string("ALIGN_BLAS=") + path + ": it has no cblas_sgemm (nor scipy_cblas_sgemm)";
    }
    return;
  }
  const char* candidates[] = {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"};
  for (const char* name : candidates) {
    void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    if (adopt(lib, name)) return;
    dlclose(lib);
  }
}

}  // namespace

std::string init(bool disable) {
  std::call_once(g_once, [disable] { load(disable); });
  return g_error;
}

GemmFn gemm() {
  return g_sgemm ? blas_gemm : nullptr;
}

std::string info() {
  return g_info;
}

}  // namespace aligner::blas
