{
  # The CPU backend addon. OpenBLAS is dlopen'ed at load (see src/blas.cc), so the build needs
  # neither BLAS headers nor libraries and the addon still works where BLAS is absent.
  'targets': [
    {
      'target_name': 'aligner_cpu',
      'sources': [
        'src/addon.cc',
        'src/bind_storage.cc',
        'src/bind_kernels.cc',
        'src/buffers.cc',
        'src/stream.cc',
        'src/pool.cc',
        'src/blas.cc',
        'src/gemm_fallback.cc',
        'src/gemm_skinny.cc',
        'src/elementwise.cc',
        'src/binary.cc',
        'src/reduce.cc',
        'src/matmul.cc',
        'src/layout.cc',
        'src/softmax.cc',
        'src/norm.cc',
        'src/rope_swiglu.cc',
        'src/attention.cc',
        'src/optim.cc',
        'src/probe.cc',
        # CUDA backend: libraries are dlopen'ed at run time, so no CUDA headers are needed here.
        'src/cuda/loader.cc',
        'src/cuda/device.cc',
        'src/cuda/gemm.cc',
        'src/cuda/bind_cuda.cc',
        'src/cuda/bind_cuda_kernels.cc',
      ],
      'include_dirs': ['src'],
      # node-gyp's common.gypi turns C++ exceptions and RTTI off; kernel errors travel as exceptions.
      'cflags!': ['-fno-exceptions', '-O2', '-O0'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17', '-std=gnu++20', '-O2', '-O0'],
      # No -ffast-math: NaN and Inf must propagate. ISO -std=c++17 also means -ffp-contract=off, so
      # FMAs appear only where the source asks for them and results do not depend on how a loop
      # happened to be vectorised. -fno-math-errno only lets sqrt vectorise.
      'cflags': ['-O3', '-mavx2', '-mfma', '-fvisibility=hidden', '-fno-math-errno'],
      'cflags_cc': ['-O3', '-mavx2', '-mfma', '-std=c++17', '-fexceptions', '-fvisibility=hidden',
                    '-fno-math-errno', '-Wall', '-Wextra', '-Wno-unused-parameter'],
      'libraries': ['-ldl', '-lpthread'],
    },
  ],
}
