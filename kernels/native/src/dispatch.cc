// The three kernel tables and the choice between them (see dispatch.h).
#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#define KERNEL_DECL_NS avx2
#include "kernel_decls.h"
#undef KERNEL_DECL_NS
#define KERNEL_DECL_NS avx512
#include "kernel_decls.h"
#undef KERNEL_DECL_NS

namespace aligner {

namespace {

#define ALIGNER_ENTRY_AVX512(name) &avx512::name,
#define ALIGNER_ENTRY_AVX2(name) &avx2::name,
#define ALIGNER_ENTRY_BASELINE(name) &baseline::name,
constexpr KernelTable kAvx512{"avx512", ALIGNER_KERNELS(ALIGNER_ENTRY_AVX512)};
constexpr KernelTable kAvx2{"avx2", ALIGNER_KERNELS(ALIGNER_ENTRY_AVX2)};
constexpr KernelTable kBaseline{"baseline", ALIGNER_KERNELS(ALIGNER_ENTRY_BASELINE)};
#undef ALIGNER_ENTRY_AVX512
#undef ALIGNER_ENTRY_AVX2
#undef ALIGNER_ENTRY_BASELINE

// Until init_isa runs, the baseline build: safe on every x86-64 CPU.
std::atomic<const KernelTable*> g_active{&kBaseline};

bool cpu_runs(const std::string& name) {
  const std::string widest = widest_isa();
  if (name == "baseline") return true;
  if (name == "avx2") return widest == "avx2" || widest == "avx512";
  return name == "avx512" && widest == "avx512";
}

}  // namespace

const KernelTable* kernel_table(const std::string& name) {
  if (name == "avx512") return &kAvx512;
  if (name == "avx2") return &kAvx2;
  if (name == "baseline") return &kBaseline;
  return nullptr;
}

const KernelTable& kernels() {
  return *g_active.load(std::memory_order_acquire);
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const char* name : {"avx512", "avx2", "baseline"})
    if (cpu_runs(name)) out.push_back(name);
  return out;
}

std::string select_isa(const std::string& name) {
  const KernelTable* t = kernel_table(name);
  if (!t) return "unknown ISA '" + name + "'; use avx512, avx2 or baseline";
  if (!cpu_runs(name))
    return std::string("this CPU cannot run the ") + name + " kernels (its widest ISA is " + widest_isa() + ")";
  g_active.store(t, std::memory_order_release);
  return "";
}

std::string init_isa() {
  // The table is process-wide: the first environment to load chooses, and a later one (a worker
  // thread's) does not undo a setKernelIsa made meanwhile.
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    const char* forced = std::getenv("ALIGN_ISA");
    if (forced && *forced) {
      error = select_isa(forced);
      if (!error.empty()) error = "ALIGN_ISA=" + std::string(forced) + ": " + error;
      return;
    }
    error = select_isa(available_isas().front());
  });
  return error;
}

}  // namespace aligner
