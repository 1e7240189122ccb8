// Layout kernels — permute, copyBlock (slice/concat), embedding gather and its scatter-add
// gradient (kernels/reference/permute.ts, copy-block.ts, embedding.ts). permute and copyBlock
// move raw 2- or 4-byte elements, so they serve every dtype.
//
// embeddingBackward is deterministic without atomics (the reference adds rows in increasing t):
//   1. keys[k] = id·n + t for each position (invalid ids and padding get the max key),
//   2. a bitonic sort of the keys (the host launches its log²(n) passes),
//   3. each id's run [start, end) in the sorted keys is marked,
//   4. one thread per (id, channel) adds g[t, c] over its run, in increasing t; ids with no run get 0.
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

// Output shape and, per output axis, the input stride it walks (rank ≤ 8).
struct Permutation {
  int rank;
  int shape[8];
  int stride[8];
};

#define DEFINE_LAYOUT(name, E)                                                                          \
  /* x [shape] → out [shape[perm[0]], …] (p.shape is the output shape) */                              \
  extern "C" __global__ void permute_##name(const E* x, E* out, i64 n, Permutation p) {                 \
    GRID_STRIDE(i, n) {                                                                                 \
      i64 rem = i, src = 0;                                                                             \
      for (int d = p.rank - 1; d >= 0; d--) {                                                           \
        src += (rem % p.shape[d]) * p.stride[d];                                                        \
        rem /= p.shape[d];                                                                              \
      }                                                                                                 \
      out[i] = x[src];                                                                                  \
    }                                                                                                   \
  }                                                                                                     \
  /* src [outer, srcAxis, inner] rows srcOff… → dst [outer, dstAxis, inner] rows dstOff…, len rows */  \
  extern "C" __global__ void copyBlock_##name(const E* src, E* dst, i64 outer, i64 len, i64 inner, i64 src_axis, \
                                              i64 src_off, i64 dst_axis, i64 dst_off) {                 \
    const i64 block = len * inner;                                                                      \
    GRID_STRIDE(k, outer * block) {                                                                     \
      const i64 o = k / block, rem = k % block;                                                         \
      const i64 a = rem / inner, i = rem % inner;                                                       \
      dst[(o * dst_axis + dst_off + a) * inner + i] = src[(o * src_axis + src_off + a) * inner + i];    \
    }                                                                                                   \
  }
DEFINE_LAYOUT(u32, unsigned)
DEFINE_LAYOUT(u16, unsigned short)

#define DEFINE_EMBEDDING(name, T)                                                                       \
  /* weight [V, C], ids [n] → out [n, C]; a bad id writes zeros and raises IndexError at the next read */ \
  extern "C" __global__ void embedding_##name(const T* weight, const int* ids, T* out, i64 n, i64 C, i64 V, int* err) { \
    GRID_STRIDE(k, n * C) {                                                                             \
      const i64 t = k / C, c = k % C;                                                                   \
      const int id = ids[t];                                                                            \
      if (id < 0 || id >= V) {                                                                          \
        if (c == 0) report_index_error(err, ERR_EMBEDDING, t, id, V);                                   \
        out[k] = from_f<T>(0.0f);                                                                       \
      } else {                                                                                          \
        out[k] = weight[id * C + c];                                                                    \
      }                                                                                                 \
    }                                                                                                   \
  }                                                                                                     \
  /* g [n, C], sorted keys, runs start/end [V] → gw [V, C] */                                          \
  extern "C" __global__ void embeddingBackward_##name(const T* g, const unsigned long long* keys, const int* start, \
                                                      const int* end, T* gw, i64 n, i64 C, i64 V) {     \
    GRID_STRIDE(k, V * C) {                                                                             \
      const i64 v = k / C, c = k % C;                                                                   \
      float acc = 0.0f;                                                                                 \
      for (int i = start[v]; i < end[v]; i++) acc += to_f(g[static_cast<i64>(keys[i] % n) * C + c]);    \
      gw[k] = from_f<T>(acc);                                                                           \
    }                                                                                                   \
  }
FOR_FLOAT_TYPES(DEFINE_EMBEDDING)

#define NO_KEY 0xffffffffffffffffull

// keys [m] (m = n rounded up to a power of two): id·n + t, or NO_KEY for bad ids and padding
extern "C" __global__ void embeddingBackwardKeys(const int* ids, unsigned long long* keys, i64 n, i64 m, i64 V, int* err) {
  GRID_STRIDE(k, m) {
    unsigned long long key = NO_KEY;
    if (k < n) {
      const int id = ids[k];
      if (id < 0 || id >= V)
        report_index_error(err, ERR_EMBEDDING_BACKWARD, k, id, V);
      else
        key = static_cast<unsigned long long>(id) * static_cast<unsigned long long>(n) + static_cast<unsigned long long>(k);
    }
    keys[k] = key;
  }
}

// One compare-exchange pass of a bitonic sort over keys [m] (stage size `size`, distance `stride`).
extern "C" __global__ void embeddingBackwardSortPass(unsigned long long* keys, i64 m, i64 size, i64 stride) {
  GRID_STRIDE(i, m) {
    const i64 j = i ^ stride;
    if (j > i) {
      const bool ascending = (i & size) == 0;
      const unsigned long long a = keys[i], b = keys[j];
      if ((a > b) == ascending) {
        keys[i] = b;
        keys[j] = a;
      }
    }
  }
}

// start/end [V] (zeroed by the host) ← each id's run in the sorted keys [m]
extern "C" __global__ void embeddingBackwardRuns(const unsigned long long* keys, int* start, int* end, i64 n, i64 m) {
  GRID_STRIDE(i, m) {
    const unsigned long long key = keys[i];
    if (key != NO_KEY) {
      const unsigned long long id = key / n;
      if (i == 0 || keys[i - 1] / n != id) start[id] = static_cast<int>(i);
      if (i == m - 1 || keys[i + 1] == NO_KEY || keys[i + 1] / n != id) end[id] = static_cast<int>(i + 1);
    }
  }
}
