// The kernel table: which ISA build of the kernels (isa.h) the bindings call.
//
// At load the widest build this CPU can run is chosen (AVX-512F → avx512, AVX2 + FMA → avx2,
// else baseline), unless ALIGN_ISA names one; select_isa switches later (tests run every op
// suite on every build the machine has). Common code calls the kernels by their plain names in
// namespace aligner; the forwarding functions below send each call to the active table.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernels.h"

#define KERNEL_DECL_NS baseline
#include "kernel_decls.h"
#undef KERNEL_DECL_NS

namespace aligner {

// Every kernel of kernel_decls.h, by name.
#define ALIGNER_KERNELS(X)                                                                                     \
  X(fill) X(copy_bytes) X(cast) X(unary) X(unary_backward) X(affine) X(pow_scalar) X(binary) X(reduce_sum)     \
  X(reduce_max) X(reduce_max_backward) X(matmul) X(gemm_skinny_nt) X(permute) X(copy_block) X(embedding)      \
  X(embedding_backward) X(softmax) X(log_softmax) X(softmax_backward) X(log_softmax_backward) X(token_logprobs) \
  X(token_logprobs_backward) X(rms_norm) X(rms_norm_backward) X(layer_norm) X(layer_norm_backward) X(rope)    \
  X(swiglu) X(swiglu_backward) X(attention) X(attention_backward) X(adamw) X(clip_grad_norm) X(gemm_fallback) \
  X(fma_flops)

struct KernelTable {
  const char* isa;
#define ALIGNER_SLOT(name) decltype(&baseline::name) name;
  ALIGNER_KERNELS(ALIGNER_SLOT)
#undef ALIGNER_SLOT
};

// The active table. Set once at load (init_isa), or by select_isa once queued work has drained.
const KernelTable& kernels();

// Chooses the build once per process, at the first load: ALIGN_ISA when set (an error if this
// CPU cannot run it), else the widest the CPU has. Returns "" or the error (the same on every call).
std::string init_isa();
// Switches to the named build ("avx512", "avx2", "baseline"); "" or why not (unknown name, or
// an ISA this CPU lacks). The caller drains the stream first.
std::string select_isa(const std::string& name);
// The table of the named build, or null for an unknown name (whether the CPU runs it or not).
const KernelTable* kernel_table(const std::string& name);
// The builds this CPU can run, widest first.
std::vector<std::string> available_isas();

#define ALIGNER_FORWARD(name)                         \
  template <class... Args>                            \
  inline decltype(auto) name(Args&&... args) {        \
    return kernels().name(std::forward<Args>(args)...); \
  }
ALIGNER_KERNELS(ALIGNER_FORWARD)
#undef ALIGNER_FORWARD

}  // namespace aligner
