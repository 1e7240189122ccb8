// dlopen/dlsym of the CUDA libraries; see loader.h for the search order.
#include "cuda/loader.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

namespace aligner {
namespace cuda {

namespace {

constexpr const char* kLoaderPath = "ld.so";
const char* const kSystemDirs[] = {"/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/local/cuda/lib64"};

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> split_colons(const char* s) {
  std::vector<std::string> out;
  if (!s) return out;
  std::string cur;
  for (const char* p = s;; p++) {
    if (*p == ':' || *p == '\0') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

// Fills table t from handle; *missing receives the first symbol that is not there.
#define ALIGN_CUDA_BIND(name, ret, params)                          \
  t.name = reinterpret_cast<ret(*) params>(::dlsym(handle, #name)); \
  if (!t.name && !*missing) *missing = #name;

void bind_driver(void* handle, DriverFns& t, const char** missing) { ALIGN_CUDA_DRIVER_FNS(ALIGN_CUDA_BIND) }
void bind_runtime(void* handle, RuntimeFns& t, const char** missing) { ALIGN_CUDA_RUNTIME_FNS(ALIGN_CUDA_BIND) }
void bind_cublaslt(void* handle, CublasLtFns& t, const char** missing) { ALIGN_CUBLASLT_FNS(ALIGN_CUDA_BIND) }
void bind_nvrtc(void* handle, NvrtcFns& t, const char** missing) { ALIGN_NVRTC_FNS(ALIGN_CUDA_BIND) }
void bind_nccl(void* handle, NcclFns& t, const char** missing) { ALIGN_NCCL_FNS(ALIGN_CUDA_BIND) }
#undef ALIGN_CUDA_BIND

std::string join(const std::vector<std::string>& xs, const char* sep) {
  std::string out;
  for (size_t i = 0; i < xs.size(); i++) out += (i ? sep : "") + xs[i];
  return out;
}

// Tries every location × name; fills `table` and marks lib loaded on the first complete library.
template <class Table>
void load_one(Library& lib, const std::vector<std::string>& locations, Table& table,
              void (*bind)(void*, Table&, const char**)) {
  std::string first_failure;  // a file that exists but would not load, or lacked a symbol
  for (const std::string& where : locations) {
    for (const std::string& name : lib.names) {
      const bool via_loader = where == kLoaderPath;
      const std::string file = via_loader ? name : where + "/" + name;
      if (!via_loader && !file_exists(file)) continue;
      ::dlerror();
      void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        const char* err = ::dlerror();
        std::string msg = err ? err : "dlopen failed";
        // The bare soname not being on the loader path is the ordinary "not here" case.
        if (via_loader && msg.find("No such file") != std::string::npos) continue;
        if (first_failure.empty()) first_failure = msg;
        continue;
      }
      Table t;
      const char* missing = nullptr;
      bind(handle, t, &missing);
      if (missing) {
        if (first_failure.empty()) first_failure = file + ": missing symbol " + missing;
        ::dlclose(handle);
        continue;
      }
      // Report the real file behind a bare soname.
      std::string path = file;
      struct link_map* map = nullptr;
      if (via_loader && ::dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && *map->l_name)
        path = map->l_name;
      table = t;
      lib.loaded = true;
      lib.path = path;
      lib.handle = handle;
      return;
    }
  }
  const std::string names = join(lib.names, " | ");
  if (!first_failure.empty())
    lib.error = names + " could not be loaded: " + first_failure;
  else
    lib.error = names + " not found (searched: " + join(locations, ", ") + ")";
}

Libraries* g_libs = nullptr;
std::once_flag g_once;

}  // namespace

const Libraries& load_libraries(const std::vector<std::string>& extra_dirs) {
  std::call_once(g_once, [&] {
    auto* libs = new Libraries();  // lives for the process: library handles are never closed
    std::vector<std::string> locations = split_colons(std::getenv("ALIGN_CUDA_LIBS"));
    locations.push_back(kLoaderPath);
    for (const char* d : kSystemDirs) locations.push_back(d);
    for (const std::string& d : extra_dirs)
      if (!d.empty()) locations.push_back(d);
    // Drop repeats, keeping the first position of each.
    std::vector<std::string> unique;
    for (const std::string& d : locations) {
      bool seen = false;
      for (const std::string& u : unique) seen = seen || u == d;
      if (!seen) unique.push_back(d);
    }
    libs->searched = unique;
    load_one(libs->driver, unique, libs->cu, bind_driver);
    load_one(libs->runtime, unique, libs->rt, bind_runtime);
    load_one(libs->cublaslt, unique, libs->lt, bind_cublaslt);
    load_one(libs->nvrtc, unique, libs->nvrtc_fns, bind_nvrtc);
    load_one(libs->nccl, unique, libs->nccl_fns, bind_nccl);
    g_libs = libs;
  });
  return *g_libs;
}

const Libraries& libraries() {
  return load_libraries({});
}

}  // namespace cuda
}  // namespace aligner
