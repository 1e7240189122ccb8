// Fused scaled-dot-product attention, flash style (Dao et al. 2022): causal, grouped KV heads,
// a key padding mask and a sliding window, forward and backward — kernels/reference/attention.ts.
// Dimension letters: B batch, Hq/Hkv query/kv heads, T queries, S keys, D head dim (≤ 256).
//
// Forward: a block of ROWS warps takes ROWS consecutive queries of one (b, h); one warp per query.
// Keys stream through shared memory in tiles of 32; lane j scores key j of the tile against the
// warp's query, the warp keeps an online softmax (running max m, sum l) and each lane accumulates
// D/32 output dims. Only O and the log-sum-exp are written; P is never materialised.
// Backward (no atomics, deterministic): delta = Σ dO·O per query; dQ with the forward's layout
// (P recomputed from the saved lse); dK and dV with one warp per key, streaming query tiles of
// every query head in the key's group. Plain fp32 FMA math (no tensor cores): the reference
// implementation and fallback that cuDNN's fused attention would be measured against.
//
// Visibility of key s to query t (pos = S − T + t), as the reference's `visible`:
//   causal → s ≤ pos;  window > 0 → s > pos − window;  mask → mask[b, s] ≠ 0.
// A query that sees no key gets O = 0 and lse = −Inf. NaN scores give NaN rows, as in the reference.
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

#define ROWS 8       // warps (queries, or keys in dK/dV) per block
#define TILE 32      // keys (or queries) per shared-memory tile: one per lane
#define MAX_DPL 8    // dims per lane: D ≤ 32·MAX_DPL = 256

struct AttnDims {
  i64 B, Hq, Hkv, T, S, D;
  float scale;
  int causal;
  int window;
};

__device__ __forceinline__ bool visible(const float* mask, const AttnDims& d, i64 b, i64 t, i64 s) {
  const i64 pos = d.S - d.T + t;
  if (s < 0 || s >= d.S) return false;
  if (d.causal && s > pos) return false;
  if (d.window > 0 && s <= pos - d.window) return false;
  return mask == nullptr || mask[b * d.S + s] != 0.0f;
}

// Keys [lo, hi) that any of the queries t0 … t1 can see (a superset; `visible` decides per pair).
__device__ __forceinline__ void key_range(const AttnDims& d, i64 t0, i64 t1, i64* lo, i64* hi) {
  const i64 pos0 = d.S - d.T + t0, pos1 = d.S - d.T + t1;
  *hi = d.causal ? min(d.S, pos1 + 1) : d.S;
  *lo = d.window > 0 ? max(static_cast<i64>(0), pos0 - d.window + 1) : 0;
}

// Copies rows [s0, s0 + TILE) of a [*, D] matrix into a padded [TILE][D + 1] tile (zeros past `hi`).
template <typename T>
__device__ __forceinline__ void load_tile(float* tile, const T* src, i64 s0, i64 hi, i64 D) {
  for (i64 idx = threadIdx.x; idx < TILE * D; idx += blockDim.x) {
    const i64 j = idx / D, c = idx % D, s = s0 + j;
    tile[j * (D + 1) + c] = s < hi ? to_f(src[s * D + c]) : 0.0f;
  }
}

template <typename T>
__device__ void attention_fwd(const T* q, const T* k, const T* v, const float* mask, T* out, float* lse, AttnDims d) {
  DYNAMIC_SHARED(smem);
  const i64 D = d.D, P = D + 1;
  float* Ks = smem;                 // [TILE][D + 1]
  float* Vs = Ks + TILE * P;        // [TILE][D + 1]
  float* Qs = Vs + TILE * P;        // [ROWS][D]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 bh = blockIdx.y, b = bh / d.Hq, h = bh % d.Hq, g = h / (d.Hq / d.Hkv);
  const i64 t0 = static_cast<i64>(blockIdx.x) * ROWS, t = t0 + warp;
  const bool active = t < d.T;
  const T* kb = k + (b * d.Hkv + g) * d.S * D;
  const T* vb = v + (b * d.Hkv + g) * d.S * D;
  const i64 row = bh * d.T + t;
  float* qs = Qs + warp * D;
  if (active)
    for (i64 c = lane; c < D; c += 32) qs[c] = to_f(q[row * D + c]);
  __syncwarp();

  float m = -inf_f(), l = 0.0f, acc[MAX_DPL];
  for (int i = 0; i < MAX_DPL; i++) acc[i] = 0.0f;
  i64 lo, hi;
  key_range(d, t0, min(t0 + ROWS, d.T) - 1, &lo, &hi);
  for (i64 s0 = lo; s0 < hi; s0 += TILE) {
    __syncthreads();  // the previous tile is no longer read
    load_tile(Ks, kb, s0, hi, D);
    load_tile(Vs, vb, s0, hi, D);
    __syncthreads();
    if (!active) continue;
    const i64 s = s0 + lane;
    float score = -inf_f();
    if (s < hi && visible(mask, d, b, t, s)) {
      float dot = 0.0f;
      for (i64 c = 0; c < D; c++) dot += qs[c] * Ks[lane * P + c];
      score = dot * d.scale;
    }
    const float m_new = nanmax(m, warp_max(score));
    if (m_new == -inf_f()) continue;  // nothing visible yet
    const float p = score == -inf_f() ? 0.0f : expf(score - m_new);
    const float corr = m == -inf_f() ? 0.0f : expf(m - m_new);
    l = l * corr + warp_sum(p);
    for (int i = 0; i < MAX_DPL; i++) acc[i] *= corr;
    for (int j = 0; j < TILE; j++) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      if (pj == 0.0f) continue;  // as the reference, which skips p = 0 (so Inf/NaN in hidden V stays out)
      for (int i = 0; i < MAX_DPL; i++) {
        const i64 c = lane + 32 * i;
        if (c < D) acc[i] += pj * Vs[j * P + c];
      }
    }
    m = m_new;
  }
  if (!active) return;
  const bool empty = m == -inf_f();
  if (lane == 0) lse[row] = empty ? -inf_f() : m + logf(l);
  for (int i = 0; i < MAX_DPL; i++) {
    const i64 c = lane + 32 * i;
    if (c < D) out[row * D + c] = from_f<T>(empty ? 0.0f : acc[i] / l);
  }
}

// delta [B·Hq·T] = Σ_c dO·O per query row (one warp per row)
template <typename T>
__device__ void attention_delta(const T* out, const T* g, float* delta, i64 rows, i64 D) {
  const int lane = threadIdx.x & 31;
  const i64 row = static_cast<i64>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  float acc = 0.0f;
  for (i64 c = lane; c < D; c += 32) acc += to_f(g[row * D + c]) * to_f(out[row * D + c]);
  acc = warp_sum(acc);
  if (lane == 0) delta[row] = acc;
}

// gq = Σ_s dS·k_s·scale with dS = P·(dP − delta), dP = dO·v_s: the forward's layout
template <typename T>
__device__ void attention_bwd_dq(const T* q, const T* k, const T* v, const float* mask, const float* lse, const T* g,
                                 const float* delta, T* gq, AttnDims d) {
  DYNAMIC_SHARED(smem);
  const i64 D = d.D, P = D + 1;
  float* Ks = smem;
  float* Vs = Ks + TILE * P;
  float* Qs = Vs + TILE * P;    // [ROWS][D]
  float* Gs = Qs + ROWS * D;    // [ROWS][D]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 bh = blockIdx.y, b = bh / d.Hq, h = bh % d.Hq, kvh = h / (d.Hq / d.Hkv);
  const i64 t0 = static_cast<i64>(blockIdx.x) * ROWS, t = t0 + warp;
  const i64 row = bh * d.T + t;
  const float row_lse = t < d.T ? lse[row] : -inf_f();
  const bool active = t < d.T && row_lse != -inf_f();
  const float row_delta = active ? delta[row] : 0.0f;
  const T* kb = k + (b * d.Hkv + kvh) * d.S * D;
  const T* vb = v + (b * d.Hkv + kvh) * d.S * D;
  float* qs = Qs + warp * D;
  float* gs = Gs + warp * D;
  if (active)
    for (i64 c = lane; c < D; c += 32) {
      qs[c] = to_f(q[row * D + c]);
      gs[c] = to_f(g[row * D + c]);
    }
  __syncwarp();
  float acc[MAX_DPL];
  for (int i = 0; i < MAX_DPL; i++) acc[i] = 0.0f;
  i64 lo, hi;
  key_range(d, t0, min(t0 + ROWS, d.T) - 1, &lo, &hi);
  for (i64 s0 = lo; s0 < hi; s0 += TILE) {
    __syncthreads();
    load_tile(Ks, kb, s0, hi, D);
    load_tile(Vs, vb, s0, hi, D);
    __syncthreads();
    if (!active) continue;
    const i64 s = s0 + lane;
    float ds = 0.0f;
    if (s < hi && visible(mask, d, b, t, s)) {
      float dot = 0.0f, dp = 0.0f;
      for (i64 c = 0; c < D; c++) {
        dot += qs[c] * Ks[lane * P + c];
        dp += gs[c] * Vs[lane * P + c];
      }
      const float p = expf(dot * d.scale - row_lse);
      ds = p * (dp - row_delta) * d.scale;
    }
    for (int j = 0; j < TILE; j++) {
      const float dsj = __shfl_sync(0xffffffffu, ds, j);
      if (dsj == 0.0f) continue;
      for (int i = 0; i < MAX_DPL; i++) {
        const i64 c = lane + 32 * i;
        if (c < D) acc[i] += dsj * Ks[j * P + c];
      }
    }
  }
  if (t >= d.T) return;
  for (int i = 0; i < MAX_DPL; i++) {
    const i64 c = lane + 32 * i;
    if (c < D) gq[row * D + c] = from_f<T>(acc[i]);
  }
}

// gk, gv for keys of one (b, kv head): one warp per key, query tiles of every head in the group
template <typename T>
__device__ void attention_bwd_dkv(const T* q, const T* k, const T* v, const float* mask, const float* lse, const T* g,
                                  const float* delta, T* gk, T* gv, AttnDims d) {
  DYNAMIC_SHARED(smem);
  const i64 D = d.D, P = D + 1;
  float* Qs = smem;               // [TILE][D + 1]
  float* Gs = Qs + TILE * P;      // [TILE][D + 1]
  float* Kr = Gs + TILE * P;      // [ROWS][D]
  float* Vr = Kr + ROWS * D;      // [ROWS][D]
  float* Ls = Vr + ROWS * D;      // [TILE]
  float* Ds = Ls + TILE;          // [TILE]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 bg = blockIdx.y, b = bg / d.Hkv, kvh = bg % d.Hkv, group = d.Hq / d.Hkv;
  const i64 s_first = static_cast<i64>(blockIdx.x) * ROWS, s = s_first + warp;
  const bool active = s < d.S && (mask == nullptr || mask[b * d.S + s] != 0.0f);
  const i64 krow = bg * d.S + s;
  float* kr = Kr + warp * D;
  float* vr = Vr + warp * D;
  if (active)
    for (i64 c = lane; c < D; c += 32) {
      kr[c] = to_f(k[krow * D + c]);
      vr[c] = to_f(v[krow * D + c]);
    }
  __syncwarp();
  float dk[MAX_DPL], dv[MAX_DPL];
  for (int i = 0; i < MAX_DPL; i++) dk[i] = dv[i] = 0.0f;
  // Queries that can see any of this block's keys: causal needs pos ≥ s, a window needs pos < s + window.
  const i64 s_last = min(s_first + ROWS, d.S) - 1, shift = d.S - d.T;
  const i64 t_lo = d.causal ? max(static_cast<i64>(0), s_first - shift) : 0;
  const i64 t_hi = d.window > 0 ? min(d.T, s_last + d.window - shift) : d.T;
  for (i64 hh = 0; hh < group; hh++) {
    const i64 bh = b * d.Hq + kvh * group + hh;
    for (i64 q0 = t_lo; q0 < t_hi; q0 += TILE) {
      __syncthreads();
      load_tile(Qs, q + bh * d.T * D, q0, d.T, D);
      load_tile(Gs, g + bh * d.T * D, q0, d.T, D);
      if (threadIdx.x < TILE) {
        const i64 t = q0 + threadIdx.x;
        Ls[threadIdx.x] = t < d.T ? lse[bh * d.T + t] : -inf_f();
        Ds[threadIdx.x] = t < d.T ? delta[bh * d.T + t] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      const i64 t = q0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (t < d.T && Ls[lane] != -inf_f() && visible(mask, d, b, t, s)) {
        float dot = 0.0f, dp = 0.0f;
        for (i64 c = 0; c < D; c++) {
          dot += Qs[lane * P + c] * kr[c];
          dp += Gs[lane * P + c] * vr[c];
        }
        p = expf(dot * d.scale - Ls[lane]);
        ds = p * (dp - Ds[lane]) * d.scale;
      }
      for (int j = 0; j < TILE; j++) {
        const float pj = __shfl_sync(0xffffffffu, p, j), dsj = __shfl_sync(0xffffffffu, ds, j);
        if (pj == 0.0f && dsj == 0.0f) continue;
        for (int i = 0; i < MAX_DPL; i++) {
          const i64 c = lane + 32 * i;
          if (c < D) {
            dv[i] += pj * Gs[j * P + c];
            dk[i] += dsj * Qs[j * P + c];
          }
        }
      }
    }
  }
  if (s >= d.S) return;
  for (int i = 0; i < MAX_DPL; i++) {
    const i64 c = lane + 32 * i;
    if (c < D) {
      gk[krow * D + c] = from_f<T>(dk[i]);
      gv[krow * D + c] = from_f<T>(dv[i]);
    }
  }
}

#define DEFINE_ATTENTION(name, T)                                                                       \
  /* q [B,Hq,T,D], k/v [B,Hkv,S,D], mask [B,S] or null → out [B,Hq,T,D], lse [B,Hq,T];                \
     grid (⌈T/ROWS⌉, B·Hq), block 32·ROWS */                                                           \
  extern "C" __global__ void attention_##name(const T* q, const T* k, const T* v, const float* mask, T* out, float* lse, \
                                              AttnDims d) {                                             \
    attention_fwd<T>(q, k, v, mask, out, lse, d);                                                       \
  }                                                                                                     \
  /* grid ⌈rows/ROWS⌉, block 32·ROWS */                                                                 \
  extern "C" __global__ void attentionBackwardDelta_##name(const T* out, const T* g, float* delta, i64 rows, i64 D) { \
    attention_delta<T>(out, g, delta, rows, D);                                                         \
  }                                                                                                     \
  /* grid (⌈T/ROWS⌉, B·Hq) */                                                                           \
  extern "C" __global__ void attentionBackwardDq_##name(const T* q, const T* k, const T* v, const float* mask,     \
                                                       const float* lse, const T* g, const float* delta, T* gq, AttnDims d) { \
    attention_bwd_dq<T>(q, k, v, mask, lse, g, delta, gq, d);                                           \
  }                                                                                                     \
  /* grid (⌈S/ROWS⌉, B·Hkv) */                                                                          \
  extern "C" __global__ void attentionBackwardDkv_##name(const T* q, const T* k, const T* v, const float* mask,    \
                                                        const float* lse, const T* g, const float* delta, T* gk, T* gv, \
                                                        AttnDims d) {                                   \
    attention_bwd_dkv<T>(q, k, v, mask, lse, g, delta, gk, gv, d);                                      \
  }
FOR_FLOAT_TYPES(DEFINE_ATTENTION)
