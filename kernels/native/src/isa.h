// Which build of the kernels this translation unit is: binding.gyp compiles every kernel source
// once per ISA with -DALIGNER_ISA_<name> and that ISA's -m flags. Each build lives in its own
// namespace (aligner::avx512, aligner::avx2, aligner::baseline), so the three copies of every
// kernel and inline helper never share a symbol and the linker cannot swap one for another.
// Common code (the bindings, the pool, the stream) is built once, for the baseline ISA, and
// reaches the kernels through the table in dispatch.h.
#pragma once

#if defined(ALIGNER_ISA_AVX512)
#define ALIGNER_ISA_NS avx512
#elif defined(ALIGNER_ISA_AVX2)
#define ALIGNER_ISA_NS avx2
#elif defined(ALIGNER_ISA_BASELINE)
#define ALIGNER_ISA_NS baseline
#else
#error "kernel sources are built once per ISA: define ALIGNER_ISA_AVX512, ALIGNER_ISA_AVX2 or ALIGNER_ISA_BASELINE"
#endif
