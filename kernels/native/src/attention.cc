// Fused attention, FlashAttention style (Dao et al. 2022): keys are visited in tiles of kTK with
// an online softmax, so no thread ever holds more than a kTQ×kTK tile of scores; the backward
// pass recomputes P from the saved lse instead of storing it. Decoding (at most kDecodeRows query
// rows) takes its own path: one dot product per key and one softmax per row.
//
// A sliding window (d.window > 0) gives each query block a first key tile: tiles before it, on the
// same grid of multiples of kTK, are never loaded, and a row skips a visited tile that lies wholly
// outside its window, so only keys of probability 0 are skipped. The tile grid does not depend on the
// window, and a window ≥ S skips nothing: it takes the no-window path and gives the same bits.
//
// Forward tasks are (b, query head, query block); backward tasks are (b, kv head), each owning
// gk/gv of its kv head and gq of the query heads that read it, so accumulation needs no locks
// and runs in the same order whatever the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"
#include "transpose.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

constexpr i64 kTQ = 32;  // query rows per block
constexpr i64 kTK = 64;  // keys per tile
constexpr int kTileVecs = kTK / simd::W;  // a tile row of scores, or 64 columns of acc, in registers

struct Scratch {
  std::vector<float> kT, vT, sc, p, acc;
  void size(i64 D) {
    kT.assign(D * kTK, 0.0f);
    vT.assign(D * kTK, 0.0f);
    sc.assign(kTQ * kTK, 0.0f);
    p.assign(kTQ * kTK, 0.0f);
    acc.assign(kTQ * D, 0.0f);
  }
};

// Tile [s0, s0+ns) of a [S, D] matrix, transposed to [D, kTK], so a row of scores is a run of
// vectorisable FMAs over s instead of ns separate dot products. 8×8 blocks go through registers.
void transpose_tile(const float* m, i64 s0, i64 ns, i64 D, float* out) {
  const auto* src = reinterpret_cast<const uint32_t*>(m + s0 * D);  // [ns, D]
  auto* dst = reinterpret_cast<uint32_t*>(out);                     // [D, kTK]
  const i64 s8 = ns / 8 * 8, d8 = D / 8 * 8;
  for (i64 s = 0; s < s8; s += 8)
    for (i64 d = 0; d < d8; d += 8) simd::transpose8x8(src + s * D + d, D, dst + d * kTK + s, kTK);
  for (i64 s = 0; s < ns; s++) {
    const i64 d_from = s < s8 ? d8 : 0;  // rows of full 8-row blocks only miss their last columns
    for (i64 d = d_from; d < D; d++) dst[d * kTK + s] = src[s * D + d];
  }
}

// sc[s] = Σ_d qrow[d]·kT[d][s] for s < ns, one fused multiply-add per d in increasing d, all kTK
// sums in registers. Columns of kT past ns hold an earlier tile's keys (or zeros): their lanes are
// computed and stored too, and never read, so a partial tile runs at full speed and a key gets
// the same bits whichever tile it lands in. sc has room for kTK scores.
void row_scores(const float* qrow, const float* kT, i64 /*ns*/, i64 D, float* sc) {
  simd::V a[kTileVecs];
  for (int u = 0; u < kTileVecs; u++) a[u] = simd::zero();
  for (i64 d = 0; d < D; d++) {
    const simd::V qd = simd::set1(qrow[d]);
    const float* kd = kT + d * kTK;
    for (int u = 0; u < kTileVecs; u++) a[u] = simd::fma(qd, simd::load(kd + simd::W * u), a[u]);
  }
  for (int u = 0; u < kTileVecs; u++) simd::store(sc + simd::W * u, a[u]);
}

// acc[j] += w_s · rows_s[j] for j0 ≤ j < D (the columns past the last 64-column chunk), through
// memory, skipping every s whose gate p_s is 0.
void accumulate_tail(float* acc, i64 j0, i64 D, i64 n, const float* w, i64 wst, const float* p, i64 pst,
                     const float* rows, i64 rst) {
  for (i64 s = 0; s < n; s++) {
    if (p[s * pst] == 0.0f) continue;
    const float ws = w[s * wst];
    const float* r = rows + s * rst;
    for (i64 j = j0; j < D; j++) acc[j] = std::fma(ws, r[j], acc[j]);
  }
}

// acc[j] += w_s · rows_s[j] for j < D, over s < n in increasing s, skipping every s whose gate
// p_s is 0 (the reference never adds a zero-probability term). w_s = w[s·wst], p_s = p[s·pst],
// rows_s = rows + s·rst. Chunks of 64 columns stay in registers across s; the remainder does the
// same FMAs through memory.
void accumulate(float* acc, i64 D, i64 n, const float* w, i64 wst, const float* p, i64 pst, const float* rows,
                i64 rst) {
  i64 j0 = 0;
  for (; j0 + 64 <= D; j0 += 64) {
    simd::V a[kTileVecs];
    for (int u = 0; u < kTileVecs; u++) a[u] = simd::load(acc + j0 + simd::W * u);
    for (i64 s = 0; s < n; s++) {
      if (p[s * pst] == 0.0f) continue;
      const simd::V ws = simd::set1(w[s * wst]);
      const float* r = rows + s * rst + j0;
      for (int u = 0; u < kTileVecs; u++) a[u] = simd::fma(ws, simd::load(r + simd::W * u), a[u]);
    }
    for (int u = 0; u < kTileVecs; u++) simd::store(acc + j0 + simd::W * u, a[u]);
  }
  if (j0 < D) accumulate_tail(acc, j0, D, n, w, wst, p, pst, rows, rst);
}

// Two query rows (or two keys) at a time where the registers allow it: on AVX-512 a row of 64
// scores is 4 vectors, so two rows are 8 accumulators and share every load; on AVX2 one row is
// already 8, and pairs would spill.
constexpr bool kPairs = kTileVecs <= 4;
constexpr i64 kRowStep = kPairs ? 2 : 1;

// row_scores for two query rows against one tile: each row's sums are exactly row_scores' (the
// same FMAs in the same order); the kT loads are shared.
void row_scores2(const float* q0, const float* q1, const float* kT, i64 D, float* sc0, float* sc1) {
  simd::V a[kTileVecs], b[kTileVecs];
  for (int u = 0; u < kTileVecs; u++) a[u] = b[u] = simd::zero();
  for (i64 d = 0; d < D; d++) {
    const simd::V x0 = simd::set1(q0[d]), x1 = simd::set1(q1[d]);
    const float* kd = kT + d * kTK;
    for (int u = 0; u < kTileVecs; u++) {
      const simd::V kv = simd::load(kd + simd::W * u);
      a[u] = simd::fma(x0, kv, a[u]);
      b[u] = simd::fma(x1, kv, b[u]);
    }
  }
  for (int u = 0; u < kTileVecs; u++) {
    simd::store(sc0 + simd::W * u, a[u]);
    simd::store(sc1 + simd::W * u, b[u]);
  }
}

// accumulate into two accumulators over the same rows: acc0 with weights w0 and gates p0, acc1 with
// w1 and p1 (the same strides). Each gets exactly accumulate's FMAs in the same order; the row
// loads are shared.
void accumulate2(float* acc0, float* acc1, i64 D, i64 n, const float* w0, const float* p0, const float* w1,
                 const float* p1, i64 wst, i64 pst, const float* rows, i64 rst) {
  i64 j0 = 0;
  for (; j0 + 64 <= D; j0 += 64) {
    simd::V a[kTileVecs], b[kTileVecs];
    for (int u = 0; u < kTileVecs; u++) {
      a[u] = simd::load(acc0 + j0 + simd::W * u);
      b[u] = simd::load(acc1 + j0 + simd::W * u);
    }
    for (i64 s = 0; s < n; s++) {
      const bool g0 = p0[s * pst] != 0.0f, g1 = p1[s * pst] != 0.0f;
      const float* r = rows + s * rst + j0;
      if (g0 && g1) {
        const simd::V x0 = simd::set1(w0[s * wst]), x1 = simd::set1(w1[s * wst]);
        for (int u = 0; u < kTileVecs; u++) {
          const simd::V rv = simd::load(r + simd::W * u);
          a[u] = simd::fma(x0, rv, a[u]);
          b[u] = simd::fma(x1, rv, b[u]);
        }
      } else if (g0) {
        const simd::V x0 = simd::set1(w0[s * wst]);
        for (int u = 0; u < kTileVecs; u++) a[u] = simd::fma(x0, simd::load(r + simd::W * u), a[u]);
      } else if (g1) {
        const simd::V x1 = simd::set1(w1[s * wst]);
        for (int u = 0; u < kTileVecs; u++) b[u] = simd::fma(x1, simd::load(r + simd::W * u), b[u]);
      }
    }
    for (int u = 0; u < kTileVecs; u++) {
      simd::store(acc0 + j0 + simd::W * u, a[u]);
      simd::store(acc1 + j0 + simd::W * u, b[u]);
    }
  }
  if (j0 < D) {
    accumulate_tail(acc0, j0, D, n, w0, wst, p0, pst, rows, rst);
    accumulate_tail(acc1, j0, D, n, w1, wst, p1, pst, rows, rst);
  }
}

// Scores of the live ones among `rows` (≤ 2) consecutive query rows q, q + D against one tile,
// both at once when both are live.
void tile_scores(const float* q, i64 rows, const bool* live, const float* kT, i64 ns, i64 D, float* const* sc) {
  if (rows == 2 && live[0] && live[1]) {
    row_scores2(q, q + D, kT, D, sc[0], sc[1]);
    return;
  }
  for (i64 r = 0; r < rows; r++)
    if (live[r]) row_scores(q + r * D, kT, ns, D, sc[r]);
}

// acc + r·D += Σ_s w[r][s]·rows_s (gated by p[r]) for the live ones among `rows` (≤ 2)
// consecutive accumulators, both at once when both are live.
void tile_accumulate(float* acc, i64 rows, const bool* live, i64 D, i64 ns, float* const* w, float* const* p,
                     const float* key_rows) {
  if (rows == 2 && live[0] && live[1]) {
    accumulate2(acc, acc + D, D, ns, w[0], p[0], w[1], p[1], 1, 1, key_rows, D);
    return;
  }
  for (i64 r = 0; r < rows; r++)
    if (live[r]) accumulate(acc + r * D, D, ns, w[r], 1, p[r], 1, key_rows, D);
}

// Keys visible from query t (absolute position pos = S − T + t): first(t) ≤ s ≤ last(t) and
// mask[b, s] ≠ 0 (a NaN mask counts as ≠ 0). last(t) = pos when causal; first(t) = pos − window + 1
// with a window (also when not causal). Both grow with t, so a query block's first row bounds it.
inline i64 last_visible(const AttnDims& d, i64 t) {
  return d.causal ? d.S - d.T + t : d.S - 1;
}
inline i64 first_visible(const AttnDims& d, i64 t) {
  return d.window > 0 ? std::max<i64>(0, d.S - d.T + t - d.window + 1) : 0;
}
// Start of the first key tile that query block rows t0… can see.
inline i64 first_tile(const AttnDims& d, i64 t0) {
  return first_visible(d, t0) / kTK * kTK;
}

// Scales sc by `scale` and sets invisible keys of the tile to −∞.
void mask_scores(float* sc, i64 s0, i64 ns, i64 first, i64 last, const float* mrow, float scale) {
  for (i64 s = 0; s < ns; s++) {
    bool visible = s0 + s >= first && s0 + s <= last && (mrow == nullptr || mrow[s0 + s] != 0.0f);
    sc[s] = visible ? sc[s] * scale : -INFINITY;
  }
}

inline float max_nan2(float a, float b) {
  return (a != a || b != b) ? NAN : (a > b ? a : b);
}

constexpr i64 kDecodeRows = 4;  // at most this many query rows: the decoding path

// Decoding: a few query rows against a KV cache. One dot product per key instead of key tiles,
// whose transposes cost more than the product when a tile serves a single query row (they were
// a quarter of a batch-16 decode step); each row's softmax over all its visible keys at once.
// q [B, Hq, T, D], k, v [B, Hkv, S, D], mask [B, S] | null → out [B, Hq, T, D], lse [B, Hq, T]
void attention_decode(const float* q, const float* k, const float* v, const float* mask, float* out, float* lse,
                      const AttnDims& d) {
  const i64 D = d.D, S = d.S, T = d.T, group = d.Hq / d.Hkv;
  parallel_for(d.B * d.Hq * T, std::max<i64>(1, 4096 / std::max<i64>(S * D, 1)), [&](i64 rb, i64 re) {
    thread_local std::vector<float> sc, acc;
    sc.resize(static_cast<size_t>(S));
    acc.resize(static_cast<size_t>(D));
    for (i64 row = rb; row < re; row++) {
      const i64 t = row % T, bh = row / T, h = bh % d.Hq, b = bh / d.Hq;
      const i64 kv = b * d.Hkv + h / group;
      const float* qrow = q + row * D;
      const float* K = k + kv * S * D;
      const float* V = v + kv * S * D;
      const float* mrow = mask ? mask + b * S : nullptr;
      const i64 first = first_visible(d, t), last = std::min(S - 1, last_visible(d, t));
      const i64 n = last - first + 1;  // keys in the window, visible or masked
      float* o = out + row * D;
      float* p = sc.data() + first;  // [n]
      for (i64 s = 0; s < n; s++) {
        const bool visible = mrow == nullptr || mrow[first + s] != 0.0f;
        p[s] = visible ? simd::dot(qrow, K + (first + s) * D, D) * d.scale : -INFINITY;
      }
      const float m = n > 0 ? simd::max_nan(p, n) : -INFINITY;
      if (m == -INFINITY) {  // no visible key
        std::memset(o, 0, sizeof(float) * D);
        lse[row] = -INFINITY;
        continue;
      }
      simd::V sums = simd::zero();
      for (i64 s = 0; s < n; s += simd::W) {
        const i64 r = std::min<i64>(simd::W, n - s);
        simd::V e = simd::keep(simd::first(r), simd::exp(simd::load(p + s, r) - simd::set1(m)));
        simd::store(p + s, r, e);
        sums = sums + e;
      }
      const float l = simd::hsum(sums);
      std::fill(acc.begin(), acc.end(), 0.0f);
      accumulate(acc.data(), D, n, p, 1, p, 1, V + first * D, D);  // zero weights never touch V
      const float inv = 1.0f / l;
      for (i64 j = 0; j < D; j++) o[j] = acc[j] * inv;
      lse[row] = m + std::log(l);
    }
  });
}

}  // namespace

// q [B, Hq, T, D], k, v [B, Hkv, S, D], mask [B, S] | null → out [B, Hq, T, D], lse [B, Hq, T]
void attention(const float* q, const float* k, const float* v, const float* mask, float* out, float* lse,
               const AttnDims& d) {
  if (d.T <= kDecodeRows) {
    attention_decode(q, k, v, mask, out, lse, d);
    return;
  }
  const i64 D = d.D, S = d.S, T = d.T, group = d.Hq / d.Hkv;
  const i64 nqb = ceil_div(T, kTQ);
  parallel_for(d.B * d.Hq * nqb, 1, [&](i64 tb, i64 te) {
    thread_local Scratch sp;
    sp.size(D);
    std::vector<float> m(kTQ), l(kTQ);
    for (i64 task = tb; task < te; task++) {
      const i64 qb = task % nqb, bh = task / nqb, h = bh % d.Hq, b = bh / d.Hq;
      const i64 kv = b * d.Hkv + h / group;
      const float* Q = q + bh * T * D;
      const float* K = k + kv * S * D;
      const float* V = v + kv * S * D;
      const float* mrow = mask ? mask + b * S : nullptr;
      const i64 t0 = qb * kTQ, nq = std::min(T, t0 + kTQ) - t0;
      std::fill(m.begin(), m.end(), -INFINITY);
      std::fill(l.begin(), l.end(), 0.0f);
      std::fill(sp.acc.begin(), sp.acc.end(), 0.0f);
      const i64 s_end = std::min(S, last_visible(d, t0 + nq - 1) + 1);
      for (i64 s0 = first_tile(d, t0); s0 < s_end; s0 += kTK) {
        const i64 ns = std::min(kTK, s_end - s0);
        transpose_tile(K, s0, ns, D, sp.kT.data());
        for (i64 i = 0; i < nq; i += kRowStep) {
          const i64 rows = std::min<i64>(kRowStep, nq - i);
          float* sc[2] = {sp.sc.data(), sp.sc.data() + kTK};
          bool live[2] = {false, false};
          i64 first[2] = {0, 0}, last[2] = {0, 0};
          for (i64 r = 0; r < rows; r++) {
            first[r] = first_visible(d, t0 + i + r), last[r] = last_visible(d, t0 + i + r);
            live[r] = !(s0 > last[r] || s0 + ns <= first[r]);  // the row sees a key of this tile
          }
          tile_scores(Q + (t0 + i) * D, rows, live, sp.kT.data(), ns, D, sc);
          for (i64 r = 0; r < rows; r++) {
            if (!live[r]) continue;
            mask_scores(sc[r], s0, ns, first[r], last[r], mrow, d.scale);
            const float mnew = max_nan2(m[i + r], simd::max_nan(sc[r], ns));
            if (mnew == -INFINITY) {  // nothing visible yet
              live[r] = false;
              continue;
            }
            const float alpha = simd::exp1(m[i + r] - mnew);
            float* acc = sp.acc.data() + (i + r) * D;
            if (alpha != 1.0f)
              for (i64 j = 0; j < D; j++) acc[j] *= alpha;
            // P of the tile, kept in sc; Σ_s P_s in W-lane partial sums (masked-off lanes add 0).
            simd::V psums = simd::zero();
            for (i64 s = 0; s < ns; s += simd::W) {
              i64 k = std::min<i64>(simd::W, ns - s);
              simd::V e = simd::keep(simd::first(k), simd::exp(simd::load(sc[r] + s, k) - simd::set1(mnew)));
              simd::store(sc[r] + s, k, e);
              psums = psums + e;
            }
            l[i + r] = l[i + r] * alpha + simd::hsum(psums);
            m[i + r] = mnew;
          }
          // acc += P·V (zero weights never touch V, as the reference)
          tile_accumulate(sp.acc.data() + i * D, rows, live, D, ns, sc, sc, V + s0 * D);
        }
      }
      for (i64 i = 0; i < nq; i++) {
        const i64 row = bh * T + t0 + i;
        float* o = out + row * D;
        if (m[i] == -INFINITY) {  // no visible key
          std::memset(o, 0, sizeof(float) * D);
          lse[row] = -INFINITY;
          continue;
        }
        const float inv = 1.0f / l[i];
        const float* acc = sp.acc.data() + i * D;
        for (i64 j = 0; j < D; j++) o[j] = acc[j] * inv;
        lse[row] = m[i] + std::log(l[i]);
      }
    }
  });
}

// q, out, g [B, Hq, T, D], k, v [B, Hkv, S, D], lse [B, Hq, T] → gq [B, Hq, T, D], gk, gv [B, Hkv, S, D]
void attention_backward(const float* q, const float* k, const float* v, const float* mask, const float* out,
                        const float* lse, const float* g, float* gq, float* gk, float* gv, const AttnDims& d) {
  const i64 D = d.D, S = d.S, T = d.T, group = d.Hq / d.Hkv;
  const i64 nqb = ceil_div(T, kTQ);
  parallel_for(d.B * d.Hkv, 1, [&](i64 tb, i64 te) {
    thread_local Scratch sp;
    sp.size(D);
    std::vector<float> delta(kTQ);
    std::vector<float> ds(kTQ * kTK);
    for (i64 kv = tb; kv < te; kv++) {
      const i64 b = kv / d.Hkv, hk = kv % d.Hkv;
      const float* K = k + kv * S * D;
      const float* V = v + kv * S * D;
      float* GK = gk + kv * S * D;
      float* GV = gv + kv * S * D;
      std::memset(GK, 0, sizeof(float) * S * D);
      std::memset(GV, 0, sizeof(float) * S * D);
      const float* mrow = mask ? mask + b * S : nullptr;
      for (i64 h = hk * group; h < (hk + 1) * group; h++) {
        const i64 bh = b * d.Hq + h;
        const float* Q = q + bh * T * D;
        const float* O = out + bh * T * D;
        const float* G = g + bh * T * D;
        const float* L = lse + bh * T;
        float* GQ = gq + bh * T * D;
        std::memset(GQ, 0, sizeof(float) * T * D);
        for (i64 qb = 0; qb < nqb; qb++) {
          const i64 t0 = qb * kTQ, nq = std::min(T, t0 + kTQ) - t0;
          // δ_t = Σ_i dO_i·O_i = Σ_s P_s·dP_s
          for (i64 i = 0; i < nq; i++) delta[i] = simd::dot(G + (t0 + i) * D, O + (t0 + i) * D, D);
          const i64 s_end = std::min(S, last_visible(d, t0 + nq - 1) + 1);
          for (i64 s0 = first_tile(d, t0); s0 < s_end; s0 += kTK) {
            const i64 ns = std::min(kTK, s_end - s0);
            transpose_tile(K, s0, ns, D, sp.kT.data());
            transpose_tile(V, s0, ns, D, sp.vT.data());
            for (i64 i = 0; i < nq; i += kRowStep) {
              const i64 rows = std::min<i64>(kRowStep, nq - i);
              float* sc[2] = {sp.sc.data(), sp.sc.data() + kTK};
              float *p[2] = {nullptr, nullptr}, *dsr[2] = {nullptr, nullptr};
              bool live[2] = {false, false};
              i64 first[2] = {0, 0}, last[2] = {0, 0};
              for (i64 r = 0; r < rows; r++) {
                const i64 t = t0 + i + r;
                p[r] = sp.p.data() + (i + r) * kTK;
                dsr[r] = ds.data() + (i + r) * kTK;
                first[r] = first_visible(d, t), last[r] = last_visible(d, t);
                live[r] = !(L[t] == -INFINITY || s0 > last[r] || s0 + ns <= first[r]);
                if (!live[r]) {  // row sees no key here: P = 0
                  std::fill(p[r], p[r] + ns, 0.0f);
                  std::fill(dsr[r], dsr[r] + ns, 0.0f);
                }
              }
              tile_scores(Q + (t0 + i) * D, rows, live, sp.kT.data(), ns, D, sc);
              for (i64 r = 0; r < rows; r++) {
                if (!live[r]) continue;
                mask_scores(sc[r], s0, ns, first[r], last[r], mrow, d.scale);
                const float lt = L[t0 + i + r];
                for (i64 s = 0; s < ns; s += simd::W) {
                  i64 k = std::min<i64>(simd::W, ns - s);
                  simd::store(p[r] + s, k, simd::exp(simd::load(sc[r] + s, k) - simd::set1(lt)));
                }
              }
              tile_scores(G + (t0 + i) * D, rows, live, sp.vT.data(), ns, D, sc);  // reuse sc: dP_s = Σ_i dO_i·V_s,i
              for (i64 r = 0; r < rows; r++) {
                if (!live[r]) continue;
                const float* dp = sc[r];
                for (i64 s = 0; s < ns; s++) dsr[r][s] = p[r][s] * (dp[s] - delta[i + r]) * d.scale;
              }
              tile_accumulate(GQ + (t0 + i) * D, rows, live, D, ns, dsr, p, K + s0 * D);  // gq_t += dS·K
            }
            // gk, gv rows of this tile: contributions in increasing t, as the reference.
            i64 s = 0;
            for (; kPairs && s + 2 <= ns; s += 2) {  // two keys at a time, sharing the Q and dO rows
              const float* ps = sp.p.data() + s;
              const float* dss = ds.data() + s;
              float* gk_s = GK + (s0 + s) * D;
              float* gv_s = GV + (s0 + s) * D;
              accumulate2(gk_s, gk_s + D, D, nq, dss, ps, dss + 1, ps + 1, kTK, kTK, Q + t0 * D, D);  // += dSᵀ·Q
              accumulate2(gv_s, gv_s + D, D, nq, ps, ps, ps + 1, ps + 1, kTK, kTK, G + t0 * D, D);     // += Pᵀ·dO
            }
            for (; s < ns; s++) {
              const float* ps = sp.p.data() + s;
              accumulate(GK + (s0 + s) * D, D, nq, ds.data() + s, kTK, ps, kTK, Q + t0 * D, D);  // += dSᵀ·Q
              accumulate(GV + (s0 + s) * D, D, nq, ps, kTK, ps, kTK, G + t0 * D, D);             // += Pᵀ·dO
            }
          }
        }
      }
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
