// Finding and loading the CUDA libraries at run time (dlopen), once per process.
//
// Search order for each library, first hit wins (locations outer, file names inner, so a
// directory the user names beats a newer soname elsewhere):
//   1. the directories in ALIGN_CUDA_LIBS (colon-separated),
//   2. the dynamic loader's own path (the bare soname: LD_LIBRARY_PATH, ld.so.cache),
//   3. /usr/lib/x86_64-linux-gnu, /usr/local/nvidia/lib64, /usr/local/cuda/lib64,
//   4. the extra directories the caller passes (kernels/cuda-probe.ts finds the nvidia/*/lib
//      folders of Python site-packages, where PyTorch's CUDA wheels keep the libraries).
// A file that opens but lacks a symbol we use counts as not loaded, with that symbol named.
// The first call fixes the result for the life of the process; later calls return it as is.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "cuda/api.h"

namespace aligner {
namespace cuda {

struct Library {
  Library(const char* label, std::vector<std::string> names) : label(label), names(std::move(names)) {}
  const char* label;                // "driver", "runtime", "cublasLt", "nvrtc", "nccl"
  std::vector<std::string> names;   // sonames tried, preferred first
  bool loaded = false;
  std::string path;                 // where it was loaded from (when loaded)
  std::string error;                // why not (when not loaded)
  void* handle = nullptr;
};

struct Libraries {
  Library driver{"driver", {"libcuda.so.1"}};
  Library runtime{"runtime", {"libcudart.so.13", "libcudart.so.12"}};
  Library cublaslt{"cublasLt", {"libcublasLt.so.13", "libcublasLt.so.12"}};
  Library nvrtc{"nvrtc", {"libnvrtc.so.13", "libnvrtc.so.12"}};
  Library nccl{"nccl", {"libnccl.so.2"}};
  std::vector<std::string> searched;  // every location in search order ("ld.so" for the loader path)

  DriverFns cu;
  RuntimeFns rt;
  CublasLtFns lt;
  NvrtcFns nvrtc_fns;
  NcclFns nccl_fns;
};

// Loads every library on the first call (with `extra_dirs` appended to the search), then returns
// the same result. Never throws.
const Libraries& load_libraries(const std::vector<std::string>& extra_dirs);
// The result of the first load_libraries(), loading with no extra directories if none happened.
const Libraries& libraries();

}  // namespace cuda
}  // namespace aligner
