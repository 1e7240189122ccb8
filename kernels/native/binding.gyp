{
  # The CPU backend addon. OpenBLAS is dlopen'ed at load (see src/blas.cc), so the build needs
  # neither BLAS headers nor libraries and the addon still works where BLAS is absent.
  #
  # The kernels are built three times, once per ISA, each into its own namespace (src/isa.h):
  # kernels_baseline (x86-64 only, runs anywhere), kernels_avx2 (AVX2 + FMA) and kernels_avx512
  # (AVX-512 F/DQ/BW/VL). src/dispatch.cc picks one at load. Everything else is built for the
  # baseline, so the addon loads on any x86-64 CPU. The static libraries are linked baseline first:
  # an inline library function the three builds share (a std::vector member, say) then resolves to
  # its baseline copy, which every CPU can run.
  'variables': {
    'kernel_sources': [
      'src/elementwise.cc',
      'src/binary.cc',
      'src/reduce.cc',
      'src/matmul.cc',
      'src/gemm_fallback.cc',
      'src/gemm_skinny.cc',
      'src/layout.cc',
      'src/softmax.cc',
      'src/norm.cc',
      'src/rope_swiglu.cc',
      'src/attention.cc',
      'src/optim.cc',
      'src/fma_peak.cc',
    ],
  },
  'target_defaults': {
    'include_dirs': ['src'],
    # node-gyp's common.gypi turns C++ exceptions and RTTI off; kernel errors travel as exceptions.
    'cflags!': ['-fno-exceptions', '-O2', '-O0'],
    'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17', '-std=gnu++20', '-O2', '-O0'],
    # No -ffast-math: NaN and Inf must propagate. -ffp-contract=off (not GCC's default for C++,
    # even with -std=c++17): FMAs appear only where the source asks for them, so results do not
    # depend on how a loop happened to be compiled, and the baseline build (no FMA unit assumed)
    # computes what the AVX2 build does. -fno-math-errno only lets sqrt vectorise. -fPIC: the
    # static kernel libraries end up in a shared object.
    'cflags': ['-O3', '-fPIC', '-fvisibility=hidden', '-fno-math-errno', '-ffp-contract=off'],
    'cflags_cc': ['-O3', '-fPIC', '-std=c++17', '-fexceptions', '-fvisibility=hidden', '-fno-math-errno',
                  '-ffp-contract=off', '-Wall', '-Wextra', '-Wno-unused-parameter'],
  },
  'targets': [
    {
      'target_name': 'kernels_baseline',
      'type': 'static_library',
      'sources': ['<@(kernel_sources)'],
      'defines': ['ALIGNER_ISA_BASELINE'],
    },
    {
      'target_name': 'kernels_avx2',
      'type': 'static_library',
      'sources': ['<@(kernel_sources)'],
      'defines': ['ALIGNER_ISA_AVX2'],
      'cflags': ['-mavx2', '-mfma'],
      'cflags_cc': ['-mavx2', '-mfma'],
    },
    {
      'target_name': 'kernels_avx512',
      'type': 'static_library',
      'sources': ['<@(kernel_sources)'],
      'defines': ['ALIGNER_ISA_AVX512'],
      # GCC 12's own avx512fintrin.h trips -Wmaybe-uninitialized (its _mm512_undefined_ps idiom).
      'cflags': ['-mavx2', '-mfma', '-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mprefer-vector-width=512',
                 '-Wno-maybe-uninitialized'],
      'cflags_cc': ['-mavx2', '-mfma', '-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl',
                    '-mprefer-vector-width=512', '-Wno-maybe-uninitialized'],
    },
    {
      'target_name': 'aligner_cpu',
      'dependencies': ['kernels_baseline', 'kernels_avx2', 'kernels_avx512'],
      'sources': [
        'src/addon.cc',
        'src/bind_storage.cc',
        'src/bind_kernels.cc',
        'src/buffers.cc',
        'src/stream.cc',
        'src/pool.cc',
        'src/blas.cc',
        'src/dispatch.cc',
        'src/probe.cc',
        'src/shm_group.cc',
        'src/bind_group.cc',
        # CUDA backend: libraries are dlopen'ed at run time, so no CUDA headers are needed here.
        'src/cuda/loader.cc',
        'src/cuda/device.cc',
        'src/cuda/gemm.cc',
        'src/cuda/bind_cuda.cc',
        'src/cuda/bind_cuda_kernels.cc',
        'src/cuda/bind_nccl.cc',
      ],
      'libraries': ['-ldl', '-lpthread', '-lrt'],
    },
  ],
}
