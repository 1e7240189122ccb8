// dlopen of a CBLAS. Linking a BLAS directly would make the addon unloadable where it is not
// installed; dlopen lets the same build run everywhere and take whichever library was chosen
// (infra/blas-choose.ts measures the candidates; kernels/native-backend.ts passes the winner).
// The library runs one thread per call: OpenBLAS's own pool busy-waits and fights ours on small
// machines, and MKL is put on its sequential layer (so libiomp5 is never needed); matmul.cc
// splits GEMMs across our pool anyway.
#include "blas.h"

#include <dlfcn.h>
#include <strings.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace aligner::blas {

namespace {

// CBLAS enum values (cblas.h): CblasRowMajor, CblasNoTrans, CblasTrans.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
// MKL_Set_Threading_Layer's MKL_THREADING_SEQUENTIAL (mkl_service.h).
constexpr int kMklSequential = 1;
using SgemmFn = void (*)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc);
using SetThreadsFn = void (*)(int);
using GetStringFn = char* (*)();
using MklSetLayerFn = int (*)(int);
using MklVersionStringFn = void (*)(char* buffer, int length);
using MklBranchFn = int (*)();

std::once_flag g_once;
SgemmFn g_sgemm = nullptr;
std::string g_info = "fallback";
Core g_core;
std::string g_error;

// A symbol under its plain name, or with scipy-openblas's `scipy_` prefix.
void* sym(void* lib, const char* name) {
  if (void* p = dlsym(lib, name)) return p;
  return dlsym(lib, (std::string("scipy_") + name).c_str());
}

// The file a symbol lives in (the full path the loader found), else `fallback`.
std::string file_of(void* symbol, const std::string& fallback) {
  Dl_info where;
  if (dladdr(symbol, &where) && where.dli_fname && *where.dli_fname) return where.dli_fname;
  return fallback;
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "OpenBLAS 0.3.34.481.3 DYNAMIC_ARCH …" → "0.3.34.481.3"; "… Library Version 2026.2-Product …" → "2026.2".
std::string version_after(const std::string& text, const char* marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return "";
  const size_t from = at + std::strlen(marker);
  size_t to = from;
  while (to < text.size() && (std::isdigit(static_cast<unsigned char>(text[to])) || text[to] == '.')) to++;
  return text.substr(from, to - from);
}

// Takes the library when it has cblas_sgemm. Returns false when it has none; sets `error` when it
// has one but cannot be used.
bool adopt(void* lib, const std::string& name, const std::string& label, std::string* error) {
  auto sgemm = reinterpret_cast<SgemmFn>(sym(lib, "cblas_sgemm"));
  if (!sgemm) return false;
  Core c;
  c.path = file_of(reinterpret_cast<void*>(sgemm), name);
  if (auto get_config = reinterpret_cast<GetStringFn>(sym(lib, "openblas_get_config"))) {
    if (auto set_threads = reinterpret_cast<SetThreadsFn>(sym(lib, "openblas_set_num_threads"))) set_threads(1);
    const std::string config = get_config();
    auto get_core = reinterpret_cast<GetStringFn>(sym(lib, "openblas_get_corename"));
    c.family = "openblas";
    c.version = version_after(config, "OpenBLAS ");
    c.core = get_core ? get_core() : "";
    c.isa = openblas_core_isa(c.core);
    g_info = config;
    // DYNAMIC_ARCH builds name the core in their config; a build for one target may not.
    if (!c.core.empty() && config.find(c.core) == std::string::npos) g_info += " core=" + c.core;
    if (const char* forced = std::getenv("OPENBLAS_CORETYPE"); forced && *forced)
      g_info += std::string(" (OPENBLAS_CORETYPE=") + forced + ")";
  } else if (auto set_layer = reinterpret_cast<MklSetLayerFn>(dlsym(lib, "MKL_Set_Threading_Layer"))) {
    // Before any other MKL call: its default layer is Intel OpenMP (libiomp5), which we do not ship.
    const int layer = set_layer(kMklSequential);
    if (layer != kMklSequential) {
      *error = label + ": oneMKL refused its sequential threading layer (MKL_Set_Threading_Layer returned " +
               std::to_string(layer) + ")";
      return true;
    }
    c.family = "mkl";
    if (auto version = reinterpret_cast<MklVersionStringFn>(dlsym(lib, "MKL_Get_Version_String"))) {
      char text[256] = {0};
      version(text, sizeof text - 1);
      c.version = version_after(text, "Version ");
    }
    auto branch = reinterpret_cast<MklBranchFn>(dlsym(lib, "mkl_cbwr_get_auto_branch"));
    const auto [path_name, isa] = branch ? mkl_branch(branch()) : std::pair<std::string, const char*>{"", "unknown"};
    c.core = path_name;
    c.isa = isa;
    g_info = "oneMKL " + (c.version.empty() ? std::string("(unknown version)") : c.version) + " (" +
             (c.core.empty() ? std::string("unknown") : c.core) + " code path, sequential)";
  } else {
    c.family = "other";
    g_info = "CBLAS " + base_name(c.path);
  }
  g_core = c;
  g_sgemm = sgemm;
  return true;
}

void blas_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb, float* C,
               i64 ldc) {
  g_sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m), static_cast<int>(n),
          static_cast<int>(k), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), 0.0f, C,
          static_cast<int>(ldc));
}

// Loads exactly `path` or says why not, labelled `label` ("ALIGN_BLAS=…" or the choice's origin).
void load_named(const std::string& path, const std::string& label) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    g_error = label + ": cannot load it (" + (why ? why : "unknown error") + ")";
    return;
  }
  std::string error;
  if (!adopt(lib, path, label, &error)) {
    dlclose(lib);
    g_error = label + ": it has no cblas_sgemm (nor scipy_cblas_sgemm)";
  } else if (!error.empty()) {
    g_error = error;  // the library stays loaded: MKL may have started initialising
  }
}

void load(bool disable, const Request& request) {
  if (disable) return;
  const char* named = std::getenv("ALIGN_BLAS");
  const bool system = named && std::strcmp(named, "system") == 0;
  if (named && *named && !system) {
    load_named(named, std::string("ALIGN_BLAS=") + named);
    return;
  }
  if (!system && !request.path.empty()) {
    // The variables the choice needs, for the load only (child processes must not inherit them).
    std::vector<std::string> set_here;
    for (const auto& [key, value] : request.env) {
      if (std::getenv(key.c_str())) continue;  // the user's own setting wins
      if (setenv(key.c_str(), value.c_str(), 0) == 0) set_here.push_back(key);
    }
    load_named(request.path, request.origin.empty() ? request.path : request.origin);
    for (const std::string& key : set_here) unsetenv(key.c_str());
    return;
  }
  const char* candidates[] = {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"};
  for (const char* name : candidates) {
    void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    std::string error;
    if (adopt(lib, name, name, &error)) {
      if (error.empty()) return;
      continue;  // unusable (left loaded, as above): try the next one
    }
    dlclose(lib);
  }
}

}  // namespace

const char* openblas_core_isa(const std::string& core) {
  // OpenBLAS's x86-64 cores (driver/others/dynamic.c; a single-target build reports its TARGET in
  // lower case). Zen runs the Haswell kernels. Excavator has AVX2 but OpenBLAS gives it the
  // Bulldozer family's AVX kernels, so it counts as below AVX2.
  static const char* const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const char* const avx2[] = {"Haswell", "Zen"};
  static const char* const below[] = {
      "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn", "Dunnington", "Nehalem",
      "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Nano", "Sandybridge", "Bobcat", "Bulldozer", "Piledriver",
      "Steamroller", "Excavator"};
  for (const char* n : avx512)
    if (strcasecmp(core.c_str(), n) == 0) return "avx512";
  for (const char* n : avx2)
    if (strcasecmp(core.c_str(), n) == 0) return "avx2";
  for (const char* n : below)
    if (strcasecmp(core.c_str(), n) == 0) return "baseline";
  return "unknown";
}

std::pair<std::string, const char*> mkl_branch(int code) {
  // MKL_CBWR_* (mkl_cbwr.h): the code path MKL's dispatcher takes on this CPU. 3..9 are the
  // generic and SSE/AVX paths, 10 AVX2, 11..14 the AVX-512 ones (11 and 13 for Xeon Phi). A code
  // this table does not know (a newer path) is "unknown", never guessed wider.
  switch (code) {
    case 3: return {"COMPATIBLE", "baseline"};
    case 4: return {"SSE2", "baseline"};
    case 5: return {"SSE3", "baseline"};
    case 6: return {"SSSE3", "baseline"};
    case 7: return {"SSE4_1", "baseline"};
    case 8: return {"SSE4_2", "baseline"};
    case 9: return {"AVX", "baseline"};
    case 10: return {"AVX2", "avx2"};
    case 11: return {"AVX512_MIC", "avx512"};
    case 12: return {"AVX512", "avx512"};
    case 13: return {"AVX512_MIC_E1", "avx512"};
    case 14: return {"AVX512_E1", "avx512"};
    default: return {"branch " + std::to_string(code), "unknown"};
  }
}

std::string init(bool disable, const Request& request) {
  std::call_once(g_once, [disable, &request] { load(disable, request); });
  return g_error;
}

GemmFn gemm() {
  return g_sgemm ? blas_gemm : nullptr;
}

std::string info() {
  return g_sgemm ? g_info : "fallback";
}

const Core& core() {
  static const Core fallback;
  return g_sgemm ? g_core : fallback;
}

}  // namespace aligner::blas
