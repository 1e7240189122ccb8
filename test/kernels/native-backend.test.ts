/**
 * Mechanics of the native backend: storage round trips, memory accounting, stream ordering and
 * deferred errors, a non-blocking JS thread, thread control, reproducibility across thread
 * counts, the fallback GEMM, the BLAS choice (which library, which kernels, the choice file's
 * errors), and a direct kernel-level parity check of every kernel against kernels/reference (the
 * op-level parity suites live in the other test files).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Backend, HostArray, Kernels, Storage } from '../../kernels/backend.js';
import { BINARY_KINDS, UNARY_KINDS } from '../../kernels/backend.js';
import type { DType } from '../../kernels/dtype.js';
import { roundToBf16 } from '../../kernels/dtype.js';
import { DTypeError, IndexError, NativeError, OutOfMemoryError, ShapeError } from '../../kernels/errors.js';
import type { BlasCore } from '../../kernels/native-backend.js';
import {
  DEFAULT_BLAS_CHOICE, blasCore, blasInfo, cpuIsa, emptyCache, fmaPeakGflops, getNumThreads, kernelIsas, nativeAvailable, nativeBackend,
  setKernelIsa, setNumThreads,
} from '../../kernels/native-backend.js';
import { referenceBackend, referenceKernels } from '../../kernels/reference/index.js';
import { withKernelIsa } from './harness.js';

/** Deterministic values (xorshift32) in [-scale, scale). */
function rand(n: number, seed: number, scale = 1): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) / 2 ** 32 * 2 - 1) * scale;
  });
}
const positive = (n: number, seed: number) => rand(n, seed).map((v) => 0.6 + 0.5 * v);
const ints = (n: number, seed: number, hi: number) => rand(n, seed).map((v) => Math.min(hi - 1, Math.floor((v + 1) / 2 * hi)));

/** |a − e| ≤ atol + |e|·rtol; non-finite values must match exactly. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol: number }, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const bad: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    const ok = Number.isFinite(e) ? Math.abs(a - e) <= tol.atol + Math.abs(e) * tol.rtol : Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e));
    if (!ok && bad.length < 5) bad.push(`[${i}] expected ${e}, got ${a}`);
  }
  expect(bad, `${what}: first mismatches`).toEqual([]);
}

const bits = (a: HostArray) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** A kernel invocation on fresh storages: inputs carry values, outputs start at zero (or `init`). */
interface Arg {
  dtype?: DType; // default f32
  values?: number[];
  n?: number;
}
interface Case {
  name: string;
  args: Arg[];
  run: (k: Kernels, s: Storage[]) => void;
  outs: number[]; // indices of args compared after the run
  tol?: { atol: number; rtol: number };
}

const TOL = { atol: 2e-5, rtol: 2e-4 };

function runCase(backend: Backend, kernels: Kernels, c: Case): HostArray[] {
  const storages = c.args.map((a) => {
    const n = a.values?.length ?? a.n ?? 0;
    const s = backend.alloc(a.dtype ?? 'f32', n);
    // alloc leaves contents undefined; outputs start at zero so that partial writes compare.
    backend.write(s, a.values ?? new Array<number>(n).fill(0));
    return s;
  });
  try {
    c.run(kernels, storages);
    return c.outs.map((i) => backend.readSync(storages[i]!));
  } finally {
    storages.forEach((s) => backend.free(s));
  }
}

// ---- kernel cases: every kernel of the contract, with shapes that reach chunked and tiled paths ----

function kernelCases(): Case[] {
  const cases: Case[] = [];
  const add = (c: Case) => cases.push(c);
  const special = [0, -0, 1.5, -2.25, 1e30, -1e-30, Infinity, -Infinity, NaN, 3.0000001];

  for (const dtype of ['f32', 'bf16', 'i32'] as DType[]) {
    add({ name: `fill ${dtype}`, args: [{ dtype, n: 37 }], run: (k, [o]) => k.fill(o!, 37, -3.7), outs: [0] });
    add({ name: `copy ${dtype}`, args: [{ dtype, values: ints(50, 3, 100) }, { dtype, n: 50 }], run: (k, [s, d]) => k.copy(s!, d!, 45), outs: [1] });
    for (const to of ['f32', 'bf16', 'i32'] as DType[]) {
      const values = dtype === 'i32' ? [0, 1, -7, 16777217, -2147483648, 2147483647, 123456789] : [...special, 2.5, -2.5, 1e10, -3e9, 1.00390625, 1.01171875];
      add({ name: `cast ${dtype}→${to}`, args: [{ dtype, values }, { dtype: to, n: values.length }], run: (k, [s, d]) => k.cast(s!, d!, values.length), outs: [1] });
    }
  }

  const n = 1000;
  for (const kind of UNARY_KINDS) {
    const domainPositive = kind === 'log' || kind === 'sqrt' || kind === 'rsqrt';
    const x = domainPositive ? positive(n, 11) : rand(n, 11, 4);
    add({ name: `unary ${kind}`, args: [{ values: x }, { n }], run: (k, [a, o]) => k.unary(kind, a!, o!, n), outs: [1] });
    add({ name: `unary ${kind} specials`, args: [{ values: special }, { n: special.length }], run: (k, [a, o]) => k.unary(kind, a!, o!, special.length), outs: [1] });
    // y = f(x) computed by the reference, so both backends see the same y
    const y = Array.from(runCase(referenceBackend, referenceKernels, { name: '', args: [{ values: x }, { n }], run: (k, [a, o]) => k.unary(kind, a!, o!, n), outs: [1] })[0]!);
    add({
      name: `unaryBackward ${kind}`,
      args: [{ values: x }, { values: y }, { values: rand(n, 12) }, { n }],
      run: (k, [a, b, g, o]) => k.unaryBackward(kind, a!, b!, g!, o!, n),
      outs: [3],
    });
  }
  add({ name: 'affine', args: [{ values: [...rand(n, 13, 10), ...special] }, { n: n + 10 }], run: (k, [x, o]) => k.affine(x!, o!, n + 10, 0.37, -1.25), outs: [1] });
  for (const p of [2, 3, 0.5, -1, 1, 0, 1.7, -2.5]) {
    const x = [...positive(200, 14), ...rand(50, 15, 3), ...special];
    add({ name: `powScalar ^${p}`, args: [{ values: x }, { n: x.length }], run: (k, [a, o]) => k.powScalar(a!, o!, x.length, p), outs: [1] });
  }

  for (const kind of BINARY_KINDS) {
    const a = rand(24, 16, 3), b = rand(6, 17, 3).map((v) => (kind === 'div' ? v + 4 : v));
    if (kind === 'maximum' || kind === 'minimum') {
      a[5] = NaN;
      b[2] = NaN;
    }
    // out [2,3,4]: a contiguous, b broadcast over axes 0 and 2 with stride 2 on axis 1
    add({
      name: `binary ${kind} broadcast`,
      args: [{ values: a }, { values: b }, { n: 24 }],
      run: (k, [x, y, o]) => k.binary(kind, x!, y!, o!, [2, 3, 4], [12, 4, 1], [0, 2, 0]),
      outs: [2],
    });
    const big = 40000;
    add({
      name: `binary ${kind} contiguous ${big}`,
      args: [{ values: rand(big, 18, 2) }, { values: positive(big, 19) }, { n: big }],
      run: (k, [x, y, o]) => k.binary(kind, x!, y!, o!, [big], [1], [1]),
      outs: [2],
    });
    add({
      name: `binary ${kind} scalar-left, strided`,
      args: [{ values: [2.5] }, { values: rand(30, 20, 2) }, { n: 15 }],
      run: (k, [x, y, o]) => k.binary(kind, x!, y!, o!, [3, 5], [0, 0], [1, 6]),
      outs: [2],
    });
  }

  for (const [outer, len, inner] of [[3, 7, 1], [2, 5, 9], [1, 70000, 1], [2, 3000, 700], [4, 0, 3]] as const) {
    const x = rand(outer * len * inner, 21 + len, 2);
    if (x.length > 10) x[7] = NaN;
    const tag = `[${outer},${len},${inner}]`;
    add({ name: `reduceSum ${tag}`, args: [{ values: x }, { n: outer * inner }], run: (k, [a, o]) => k.reduceSum(a!, o!, outer, len, inner), outs: [1], tol: { atol: 1e-4, rtol: 1e-4 } });
    add({ name: `reduceMax ${tag}`, args: [{ values: x }, { n: outer * inner }], run: (k, [a, o]) => k.reduceMax(a!, o!, outer, len, inner), outs: [1] });
    const y = Array.from(runCase(referenceBackend, referenceKernels, { name: '', args: [{ values: x }, { n: outer * inner }], run: (k, [a, o]) => k.reduceMax(a!, o!, outer, len, inner), outs: [1] })[0]!);
    add({
      name: `reduceMaxBackward ${tag}`,
      args: [{ values: x }, { values: y }, { values: rand(outer * inner, 22) }, { n: x.length }],
      run: (k, [a, b, g, o]) => k.reduceMaxBackward(a!, b!, g!, o!, outer, len, inner),
      outs: [3],
    });
  }
  // ties: the gradient goes to the first maximum only
  add({
    name: 'reduceMaxBackward ties',
    args: [{ values: [1, 3, 3, 2, 5, 5] }, { values: [3, 5] }, { values: [10, 20] }, { n: 6 }],
    run: (k, [a, b, g, o]) => k.reduceMaxBackward(a!, b!, g!, o!, 2, 3, 1),
    outs: [3],
  });

  for (const [batch, M, N, K, tA, tB, sharedB] of [
    [1, 5, 7, 3, false, false, false], [3, 17, 33, 65, true, false, false], [2, 70, 20, 300, false, true, true],
    [2, 9, 130, 17, true, true, false], [1, 4, 4, 0, false, false, false], [1, 200, 150, 260, false, false, false],
  ] as const) {
    const sA = M * K, sB = sharedB ? 0 : K * N;
    add({
      name: `matmul b${batch} ${M}x${N}x${K}${tA ? ' Aᵀ' : ''}${tB ? ' Bᵀ' : ''}${sharedB ? ' shared B' : ''}`,
      args: [{ values: rand(batch * M * K, 23) }, { values: rand(sharedB ? K * N : batch * K * N, 24) }, { n: batch * M * N }],
      run: (k, [a, b, o]) => k.matmul(a!, b!, o!, batch, M, N, K, tA, tB, sA, sB),
      outs: [2],
      tol: { atol: 1e-4, rtol: 1e-4 },
    });
  }

  for (const [shape, perm] of [[[2, 3, 4], [2, 0, 1]], [[2, 5, 3, 4], [0, 2, 1, 3]], [[70, 45], [1, 0]], [[3, 1, 40, 33], [3, 1, 0, 2]], [[6], [0]]] as const) {
    const n = (shape as readonly number[]).reduce((p, d) => p * d, 1);
    for (const dtype of ['f32', 'bf16'] as DType[]) {
      add({ name: `permute ${dtype} [${shape}] by [${perm}]`, args: [{ dtype, values: ints(n, 25, 250) }, { dtype, n }], run: (k, [x, o]) => k.permute(x!, o!, shape, perm), outs: [1] });
    }
  }
  add({
    name: 'copyBlock leaves the rest of dst untouched',
    args: [{ values: rand(2 * 5 * 3, 26) }, { values: rand(2 * 6 * 3, 27) }],
    run: (k, [s, d]) => k.copyBlock(s!, d!, 2, 3, 3, 5, 1, 6, 2),
    outs: [1],
  });

  const V = 11, C = 70, nIds = 40;
  const ids = ints(nIds, 28, V);
  add({ name: 'embedding', args: [{ values: rand(V * C, 29) }, { dtype: 'i32', values: ids }, { n: nIds * C }], run: (k, [w, i, o]) => k.embedding(w!, i!, o!, nIds, C, V), outs: [2] });
  add({
    name: 'embeddingBackward (repeated ids)',
    args: [{ values: rand(nIds * C, 30) }, { dtype: 'i32', values: ids }, { values: rand(V * C, 31) }],
    run: (k, [g, i, o]) => k.embeddingBackward(g!, i!, o!, nIds, C, V),
    outs: [2],
  });

  for (const [rows, len] of [[7, 13], [3, 5000], [2, 1]] as const) {
    const x = rand(rows * len, 32 + len, 5);
    const tag = `[${rows},${len}]`;
    add({ name: `softmax ${tag}`, args: [{ values: x }, { n: x.length }], run: (k, [a, o]) => k.softmax(a!, o!, rows, len), outs: [1] });
    add({ name: `logSoftmax ${tag}`, args: [{ values: x }, { n: x.length }], run: (k, [a, o]) => k.logSoftmax(a!, o!, rows, len), outs: [1] });
    const sm = Array.from(runCase(referenceBackend, referenceKernels, { name: '', args: [{ values: x }, { n: x.length }], run: (k, [a, o]) => k.softmax(a!, o!, rows, len), outs: [1] })[0]!);
    const lsm = Array.from(runCase(referenceBackend, referenceKernels, { name: '', args: [{ values: x }, { n: x.length }], run: (k, [a, o]) => k.logSoftmax(a!, o!, rows, len), outs: [1] })[0]!);
    const g = rand(x.length, 33);
    add({ name: `softmaxBackward ${tag}`, args: [{ values: sm }, { values: g }, { n: x.length }], run: (k, [y, gg, o]) => k.softmaxBackward(y!, gg!, o!, rows, len), outs: [2] });
    add({ name: `logSoftmaxBackward ${tag}`, args: [{ values: lsm }, { values: g }, { n: x.length }], run: (k, [y, gg, o]) => k.logSoftmaxBackward(y!, gg!, o!, rows, len), outs: [2] });
  }
  add({
    name: 'softmax / logSoftmax of all −∞ and +∞ rows',
    args: [{ values: [-Infinity, -Infinity, 1, Infinity] }, { n: 4 }, { n: 4 }],
    run: (k, [a, o, l]) => {
      k.softmax(a!, o!, 2, 2);
      k.logSoftmax(a!, l!, 2, 2);
    },
    outs: [1, 2],
  });

  {
    const rows = 9, Vt = 300, ignore = -100;
    const targets = ints(rows, 34, Vt);
    targets[2] = ignore;
    targets[6] = ignore;
    const logits = rand(rows * Vt, 35, 6);
    add({
      name: 'tokenLogprobs',
      args: [{ values: logits }, { dtype: 'i32', values: targets }, { n: rows }, { n: rows }],
      run: (k, [x, t, o, l]) => k.tokenLogprobs(x!, t!, o!, l!, rows, Vt, ignore),
      outs: [2, 3],
    });
    const lse = Array.from(runCase(referenceBackend, referenceKernels, {
      name: '', args: [{ values: logits }, { dtype: 'i32', values: targets }, { n: rows }, { n: rows }],
      run: (k, [x, t, o, l]) => k.tokenLogprobs(x!, t!, o!, l!, rows, Vt, ignore), outs: [3],
    })[0]!);
    add({
      name: 'tokenLogprobsBackward',
      args: [{ values: logits }, { dtype: 'i32', values: targets }, { values: lse }, { values: rand(rows, 36) }, { n: rows * Vt }],
      run: (k, [x, t, l, g, o]) => k.tokenLogprobsBackward(x!, t!, l!, g!, o!, rows, Vt, ignore),
      outs: [4],
    });
  }

  for (const [rows, len] of [[5, 37], [100, 64]] as const) {
    const x = rand(rows * len, 37, 3).map((v) => v + 2), w = rand(len, 38), b = rand(len, 39), g = rand(rows * len, 40);
    const tag = `[${rows},${len}]`;
    add({ name: `rmsNorm ${tag}`, args: [{ values: x }, { values: w }, { n: x.length }, { n: rows }], run: (k, [a, ww, o, r]) => k.rmsNorm(a!, ww!, o!, r!, rows, len, 1e-5), outs: [2, 3] });
    const rstd = Array.from(runCase(referenceBackend, referenceKernels, { name: '', args: [{ values: x }, { values: w }, { n: x.length }, { n: rows }], run: (k, [a, ww, o, r]) => k.rmsNorm(a!, ww!, o!, r!, rows, len, 1e-5), outs: [3] })[0]!);
    add({
      name: `rmsNormBackward ${tag}`,
      args: [{ values: x }, { values: w }, { values: rstd }, { values: g }, { n: x.length }, { n: len }],
      run: (k, [a, ww, r, gg, gx, gw]) => k.rmsNormBackward(a!, ww!, r!, gg!, gx!, gw!, rows, len),
      outs: [4, 5],
      tol: { atol: 1e-4, rtol: 2e-4 },
    });
    add({ name: `layerNorm ${tag}`, args: [{ values: x }, { values: w }, { values: b }, { n: x.length }, { n: rows }, { n: rows }], run: (k, [a, ww, bb, o, m, r]) => k.layerNorm(a!, ww!, bb!, o!, m!, r!, rows, len, 1e-5), outs: [3, 4, 5] });
    const [mean, rs] = runCase(referenceBackend, referenceKernels, { name: '', args: [{ values: x }, { values: w }, { values: b }, { n: x.length }, { n: rows }, { n: rows }], run: (k, [a, ww, bb, o, m, r]) => k.layerNorm(a!, ww!, bb!, o!, m!, r!, rows, len, 1e-5), outs: [4, 5] });
    add({
      name: `layerNormBackward ${tag}`,
      args: [{ values: x }, { values: w }, { values: Array.from(mean!) }, { values: Array.from(rs!) }, { values: g }, { n: x.length }, { n: len }, { n: len }],
      run: (k, [a, ww, m, r, gg, gx, gw, gb]) => k.layerNormBackward(a!, ww!, m!, r!, gg!, gx!, gw!, gb!, rows, len),
      outs: [5, 6, 7],
      tol: { atol: 1e-4, rtol: 2e-4 },
    });
  }

  for (const perBatch of [false, true]) {
    for (const inverse of [false, true]) {
      const [B, H, T, D] = [2, 3, 5, 8];
      const table = (perBatch ? B : 1) * T * (D / 2);
      add({
        name: `rope perBatch=${perBatch} inverse=${inverse}`,
        args: [{ values: rand(B * H * T * D, 41) }, { values: rand(table, 42) }, { values: rand(table, 43) }, { n: B * H * T * D }],
        run: (k, [x, c, s, o]) => k.rope(x!, c!, s!, o!, B, H, T, D, perBatch, inverse),
        outs: [3],
      });
    }
  }
  add({ name: 'swiglu', args: [{ values: rand(1003, 44, 4) }, { values: rand(1003, 45) }, { n: 1003 }], run: (k, [a, b, o]) => k.swiglu(a!, b!, o!, 1003), outs: [2] });
  add({
    name: 'swigluBackward',
    args: [{ values: rand(1003, 44, 4) }, { values: rand(1003, 45) }, { values: rand(1003, 46) }, { n: 1003 }, { n: 1003 }],
    run: (k, [a, b, g, o1, o2]) => k.swigluBackward(a!, b!, g!, o1!, o2!, 1003),
    outs: [3, 4],
  });

  // Attention: GQA, causal with T < S, masks, a query that sees no key (T > S, causal), tiles of 64 keys;
  // sliding windows (the last entry) that skip whole key tiles, cut tiles for some rows of a query block,
  // start inside a KV cache, cover the whole sequence, or apply without causal masking.
  for (const [B, Hq, Hkv, T, S, D, causal, masked, window] of [
    [2, 4, 2, 5, 7, 8, true, true, 0], [1, 2, 1, 70, 70, 16, true, false, 0], [2, 2, 2, 6, 130, 12, false, true, 0],
    [1, 3, 3, 6, 4, 8, true, false, 0], [1, 2, 1, 40, 100, 64, false, false, 0],
    [1, 2, 1, 200, 200, 16, true, false, 50], [2, 4, 2, 5, 7, 8, true, true, 3], [1, 2, 2, 40, 300, 12, true, true, 100],
    [1, 2, 1, 70, 70, 16, true, false, 70], [2, 2, 2, 6, 130, 12, false, true, 70], [1, 1, 1, 3, 3, 8, true, false, 1],
    // The decoding path (T ≤ 4): one query against a long masked cache with GQA, a windowed cache,
    // queries past the keys (T > S, causal: the first rows see none), not causal.
    [2, 4, 2, 1, 130, 64, true, true, 0], [1, 2, 1, 3, 300, 16, true, true, 100], [1, 2, 2, 4, 2, 8, true, false, 0],
    [2, 2, 1, 2, 37, 12, false, true, 0],
  ] as const) {
    const qn = B * Hq * T * D, kn = B * Hkv * S * D, scale = 1 / Math.sqrt(D);
    const q = rand(qn, 47, 2), kk = rand(kn, 48, 2), v = rand(kn, 49);
    const mask = masked ? rand(B * S, 50).map((r, i) => (i % S === 0 || r > -0.4 ? 1 : 0)) : null;
    const tag = `B${B} Hq${Hq} Hkv${Hkv} T${T} S${S} D${D}${causal ? ' causal' : ''}${masked ? ' masked' : ''}${window ? ` window${window}` : ''}`;
    const args: Arg[] = [{ values: q }, { values: kk }, { values: v }, mask ? { values: mask } : { n: 1 }, { n: qn }, { n: B * Hq * T }];
    const fwd = (k: Kernels, s: Storage[]) => k.attention(s[0]!, s[1]!, s[2]!, mask ? s[3]! : null, s[4]!, s[5]!, B, Hq, Hkv, T, S, D, scale, causal, window);
    add({ name: `attention ${tag}`, args, run: fwd, outs: [4, 5] });
    const [out, lse] = runCase(referenceBackend, referenceKernels, { name: '', args, run: fwd, outs: [4, 5] });
    const bargs: Arg[] = [...args.slice(0, 4), { values: Array.from(out!) }, { values: Array.from(lse!) }, { values: rand(qn, 51) }, { n: qn }, { n: kn }, { n: kn }];
    add({
      name: `attentionBackward ${tag}`,
      args: bargs,
      run: (k, s) => k.attentionBackward(s[0]!, s[1]!, s[2]!, mask ? s[3]! : null, s[4]!, s[5]!, s[6]!, s[7]!, s[8]!, s[9]!, B, Hq, Hkv, T, S, D, scale, causal, window),
      outs: [7, 8, 9],
      tol: { atol: 1e-4, rtol: 5e-4 },
    });
  }

  add({
    name: 'adamw',
    args: [{ values: rand(1000, 52) }, { values: rand(1000, 53) }, { values: rand(1000, 54, 0.1) }, { values: positive(1000, 55).map((v) => v * 0.01) }],
    run: (k, [p, g, m, v]) => k.adamw(p!, g!, m!, v!, 1000, 1e-3, 0.9, 0.999, 1e-8, 0.1, 7),
    outs: [0, 2, 3],
    tol: { atol: 1e-7, rtol: 1e-6 },
  });
  for (const maxNorm of [1, Infinity]) {
    add({
      name: `clipGradNorm maxNorm=${maxNorm}`,
      args: [{ values: rand(100000, 56) }, { values: rand(7, 57) }, { values: rand(3000, 58) }, { n: 1 }],
      run: (k, [a, b, c, o]) => k.clipGradNorm([a!, b!, c!], [100000, 7, 2900], maxNorm, o!),
      outs: [0, 1, 2, 3],
      tol: { atol: 1e-7, rtol: 1e-6 },
    });
  }
  return cases;
}

describe.skipIf(!nativeAvailable().ok)('native backend', () => {
  // Obtained in beforeAll: a skipped describe still runs its body to collect the tests.
  let backend: Backend;
  let k: Kernels;
  let threadsAtStart = 1;
  beforeAll(() => {
    backend = nativeBackend();
    k = backend.kernels as Kernels;
    threadsAtStart = getNumThreads();
  });
  afterAll(() => setNumThreads(threadsAtStart));

  function f32(values: number[]): Storage {
    const s = backend.alloc('f32', values.length);
    backend.write(s, values);
    return s;
  }

  describe('storage', () => {
    it('round-trips f32, bf16 (nearest even, like roundToBf16) and i32 through readSync and read', async () => {
      const values = [0, -0, 1, -1.5, 3.14159, 1e-40, 65504, 1e38, 3.4e38, Infinity, -Infinity, NaN,
        1.00390625, 1.01171875, 1.0039062500001, -2.0078125, 33.3, 1 + 2 ** -9, 2 ** 127 * 1.999];
      const expected: Record<DType, number[]> = {
        f32: values.map((v) => Math.fround(v)),
        bf16: values.map(roundToBf16),
        i32: values.map((v) => (Number.isFinite(v) ? Math.trunc(v) | 0 : 0)),
        f64: [],
      };
      for (const dtype of ['f32', 'bf16', 'i32'] as DType[]) {
        const s = backend.alloc(dtype, values.length);
        backend.write(s, values);
        const sync = backend.readSync(s);
        const viaAsync = await backend.read(s);
        expect(sync).toBeInstanceOf(dtype === 'i32' ? Int32Array : Float32Array);
        expect(viaAsync).toBeInstanceOf(dtype === 'i32' ? Int32Array : Float32Array);
        expect(Array.from(sync), dtype).toEqual(expected[dtype]);
        expect(Array.from(viaAsync), dtype).toEqual(expected[dtype]);
        backend.free(s);
      }
    });

    it('accepts typed arrays and plain arrays', () => {
      const s = backend.alloc('f32', 1000);
      backend.write(s, new Float64Array(1000).fill(0.1));
      expect(backend.readSync(s)[999]).toBe(Math.fround(0.1));
      backend.free(s);
      const empty = backend.alloc('i32', 0);
      expect(backend.readSync(empty)).toEqual(new Int32Array(0));
      backend.free(empty);
    });

    it('counts live memory and returns to the baseline once queued frees have run', () => {
      backend.synchronize();
      const base = backend.stats();
      const a = backend.alloc('f32', 1000), b = backend.alloc('bf16', 3), c = backend.alloc('i32', 0);
      const during = backend.stats();
      expect(during.liveBuffers).toBe(base.liveBuffers + 3);
      // 64-byte aligned blocks, rounded up to 64 bytes (4000 → 4032), at least 64 bytes each
      expect(during.liveBytes).toBe(base.liveBytes + 4032 + 64 + 64);
      // Above 4 KiB, sizes round up to eighths of a power of two (4 MiB stays 4 MiB).
      // A free queued behind busy work releases its memory only when that command runs.
      const big = backend.alloc('f32', 1024 * 1024), bigOut = backend.alloc('f32', 1024 * 1024);
      k.matmul(big, big, bigOut, 1, 1024, 1024, 1024, false, false, 0, 0);
      for (const s of [a, b, c, big, bigOut]) backend.free(s);
      expect(backend.stats().liveBuffers).toBe(base.liveBuffers + 5);
      backend.synchronize();
      const after = backend.stats();
      expect({ liveBuffers: after.liveBuffers, liveBytes: after.liveBytes }).toEqual({ liveBuffers: base.liveBuffers, liveBytes: base.liveBytes });
      // Freed blocks wait in the cache for reuse, until emptyCache() hands them back.
      expect(after.cachedBytes).toBeGreaterThanOrEqual(2 * 4 * 1024 * 1024);
      const again = backend.alloc('f32', 1024 * 1024);
      expect(backend.stats().cachedBytes).toBe(after.cachedBytes! - 4 * 1024 * 1024);
      backend.free(again);
      emptyCache();
      expect(backend.stats().cachedBytes).toBe(0);
    });

    it('rejects f64, wrong host arrays, sizes, dtypes and freed handles with typed errors', () => {
      expect(() => backend.alloc('f64', 4)).toThrow(DTypeError);
      const s = backend.alloc('f32', 4);
      expect(() => backend.write(s, [1, 2, 3])).toThrow(new ShapeError('write: data has 3 elements, the storage has 4'));
      const ids = backend.alloc('i32', 4);
      expect(() => k.unary('exp', ids, s, 4)).toThrow(new DTypeError('unary: x must be f32, got i32'));
      expect(() => k.softmax(s, s, 2, 3)).toThrow(new ShapeError('softmax: x has 4 elements, needs 6'));
      expect(() => k.copy(s, ids, 4)).toThrow(DTypeError);
      const handle = (s as unknown as { handle: number }).handle;
      backend.free(s);
      expect(() => backend.readSync(s)).toThrow(new NativeError(`invalid or freed handle ${handle}`));
      expect(() => k.fill(s, 4, 0)).toThrow(NativeError);
      expect(() => backend.free(s)).toThrow(new NativeError(`invalid or freed handle ${handle}`));
      backend.free(ids);
    });

    it('reports a failed allocation as OutOfMemoryError naming the bytes', () => {
      const huge = 2 ** 45; // 128 TiB of f32
      expect(() => backend.alloc('f32', huge)).toThrow(OutOfMemoryError);
      expect(() => backend.alloc('f32', huge)).toThrow(String(huge * 4));
    });
  });

  describe('stream', () => {
    it('runs queued kernels in order before a read', async () => {
      const x = f32(Array.from({ length: 100000 }, (_, i) => i));
      const y = backend.alloc('f32', 100000);
      for (let r = 0; r < 20; r++) {
        k.affine(x, y, 100000, 1, 1); // y = x + 1
        k.affine(y, x, 100000, 1, 0); // x = y
      }
      const got = await backend.read(x);
      expect(got[0]).toBe(20);
      expect(got[99999]).toBe(99999 + 20);
      backend.free(x);
      backend.free(y);
    });

    it('snapshots host data at write time, even while the stream is busy', async () => {
      const big = backend.alloc('f32', 1024 * 1024), bigOut = backend.alloc('f32', 1024 * 1024);
      const x = f32([1, 2, 3]), y = backend.alloc('f32', 3);
      k.matmul(big, big, bigOut, 1, 1024, 1024, 1024, false, false, 0, 0); // keeps the executor busy
      k.affine(x, y, 3, 10, 0); // queued: must see x = [1, 2, 3]
      const host = new Float32Array([7, 8, 9]);
      backend.write(x, host);
      host.fill(-1); // reusing the host array at once must not matter
      expect(Array.from(await backend.read(y))).toEqual([10, 20, 30]);
      expect(Array.from(backend.readSync(x))).toEqual([7, 8, 9]);
      for (const s of [big, bigOut, x, y]) backend.free(s);
    });

    it('completes a read before a free queued right after it', async () => {
      const big = backend.alloc('f32', 1024 * 1024), bigOut = backend.alloc('f32', 1024 * 1024);
      const x = f32(rand(5000, 60));
      k.matmul(big, big, bigOut, 1, 1024, 1024, 1024, false, false, 0, 0);
      const pending = backend.read(x);
      backend.free(x);
      expect(Array.from(await pending)).toEqual(rand(5000, 60).map(Math.fround));
      backend.free(big);
      backend.free(bigOut);
    });

    it('defers a kernel error to the next read, names kernel, id and position, then clears it', async () => {
      const w = f32(rand(5 * 3, 61)), ids = backend.alloc('i32', 4), out = backend.alloc('f32', 4 * 3);
      backend.write(ids, [0, 4, 9, 1]);
      expect(() => k.embedding(w, ids, out, 4, 3, 5)).not.toThrow(); // reported later, not at the call
      const err = await backend.read(out).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IndexError);
      expect((err as Error).message).toBe('embedding: id 9 out of range [0, 5) at position 2');
      expect(() => backend.synchronize()).not.toThrow();
      k.tokenLogprobs(out, ids, w, w, 4, 3, -100);
      expect(() => backend.readSync(out)).toThrow(new IndexError('tokenLogprobs: target 4 out of range [0, 3) at row 1'));
      expect(() => backend.synchronize()).not.toThrow();
      k.embeddingBackward(out, ids, w, 4, 3, 5);
      expect(() => backend.synchronize()).toThrow(new IndexError('embeddingBackward: id 9 out of range [0, 5) at position 2'));
      for (const s of [w, ids, out]) backend.free(s);
    });

    it('does not block the JS thread: setImmediate runs before a 1024³ matmul is read', async () => {
      const M = 1024;
      const a = f32(rand(M * M, 62)), b = f32(rand(M * M, 63)), c = backend.alloc('f32', M * M);
      backend.synchronize();
      let ticked = false;
      setImmediate(() => (ticked = true));
      k.matmul(a, b, c, 1, M, M, M, false, false, 0, 0); // returns at once; the executor does the work
      const result = await backend.read(c);
      expect(ticked).toBe(true);
      let want = 0;
      const A = rand(M * M, 62), B = rand(M * M, 63);
      for (let i = 0; i < M; i++) want += Math.fround(A[5 * M + i]!) * Math.fround(B[i * M + 7]!);
      expect(result[5 * M + 7]).toBeCloseTo(want, 3);
      for (const s of [a, b, c]) backend.free(s);
    });
  });

  describe('threads', () => {
    it('sets and gets the thread count', () => {
      setNumThreads(1);
      expect(getNumThreads()).toBe(1);
      setNumThreads(3);
      expect(getNumThreads()).toBe(3);
      expect(() => setNumThreads(0)).toThrow(NativeError);
      setNumThreads(threadsAtStart);
      expect(getNumThreads()).toBe(threadsAtStart);
    });

    it('gives bit-identical results for 1, 2 and 3 threads', () => {
      const wanted = new Set(['reduceSum [1,70000,1]', 'reduceSum [2,3000,700]', 'matmul b1 200x150x260', 'matmul b3 17x33x65 Aᵀ',
        'embeddingBackward (repeated ids)', 'layerNormBackward [100,64]', 'rmsNormBackward [100,64]', 'clipGradNorm maxNorm=1',
        'attentionBackward B1 Hq2 Hkv1 T70 S70 D16 causal', 'attention B1 Hq2 Hkv1 T40 S100 D64', 'softmax [3,5000]', 'binary add contiguous 40000',
        'attention B1 Hq2 Hkv1 T200 S200 D16 causal window50', 'attentionBackward B1 Hq2 Hkv1 T200 S200 D16 causal window50']);
      const cases = kernelCases().filter((c) => wanted.has(c.name));
      expect(cases.length).toBe(wanted.size);
      for (const isa of kernelIsas()) {
        const results = [1, 2, 3].map((t) => {
          setNumThreads(t);
          return withKernelIsa(isa, () => cases.map((c) => runCase(backend, k, c).map(bits)));
        });
        setNumThreads(threadsAtStart);
        cases.forEach((c, i) => {
          expect(results[1]![i], `${isa} ${c.name}: 2 vs 1 threads`).toEqual(results[0]![i]);
          expect(results[2]![i], `${isa} ${c.name}: 3 vs 1 threads`).toEqual(results[0]![i]);
        });
      }
    });

    it('the fallback GEMM (ALIGN_DISABLE_BLAS=1) is correct for transposes, batches and odd sizes', () => {
      // A fresh process: the BLAS choice is made once, at load.
      const addonPath = fileURLToPath(new URL('../../kernels/native/build/Release/aligner_cpu.node', import.meta.url));
      const script = `
        const a = require(${JSON.stringify(addonPath)});
        a.init(2);
        const rnd = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + s) * 2);
        const shapes = [[1, 7, 5, 3, 0, 0], [3, 37, 50, 300, 1, 0], [2, 100, 9, 70, 0, 1], [2, 13, 130, 257, 1, 1], [1, 500, 40, 20, 0, 0]];
        let worst = 0;
        for (const [batch, M, N, K, tA, tB] of shapes) {
          const A = rnd(batch * M * K, 1), B = rnd(batch * K * N, 2);
          const ha = a.alloc(0, A.length), hb = a.alloc(0, B.length), hc = a.alloc(0, batch * M * N);
          a.write(ha, A); a.write(hb, B);
          a.matmul(ha, hb, hc, batch, M, N, K, !!tA, !!tB, M * K, K * N);
          const C = a.readSync(hc);
          for (let p = 0; p < batch; p++) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
            let s = 0, mag = 0;
            for (let k = 0; k < K; k++) {
              const x = A[p * M * K + (tA ? k * M + i : i * K + k)], y = B[p * K * N + (tB ? j * K + k : k * N + j)];
              s += x * y; mag += Math.abs(x * y);
            }
            worst = Math.max(worst, Math.abs(C[p * M * N + i * N + j] - s) / (mag + 1e-6));
          }
          a.free(ha); a.free(hb); a.free(hc);
        }
        process.stdout.write(JSON.stringify({ blas: a.blasInfo(), worst }));
      `;
      const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ALIGN_DISABLE_BLAS: '1' }, encoding: 'utf8' });
      const { blas, worst } = JSON.parse(out) as { blas: string; worst: number };
      expect(blas).toBe('fallback');
      expect(worst).toBeLessThan(1e-5);
    });
  });

  describe('kernel parity with kernels/reference', () => {
    for (const c of kernelCases()) {
      it(c.name, () => {
        const want = runCase(referenceBackend, referenceKernels, c);
        const got = runCase(backend, k, c);
        c.outs.forEach((argIndex, i) => expectClose(got[i]!, want[i]!, c.tol ?? TOL, `${c.name}: arg ${argIndex}`));
      });
    }

    it('attention: a window covering every key gives the same bits as no window; a bad window is a ShapeError', () => {
      const cases = new Map(kernelCases().map((c) => [c.name, c]));
      for (const name of ['attention', 'attentionBackward']) {
        const plain = cases.get(`${name} B1 Hq2 Hkv1 T70 S70 D16 causal`)!, windowed = cases.get(`${name} B1 Hq2 Hkv1 T70 S70 D16 causal window70`)!;
        expect(runCase(backend, k, windowed).map(bits), name).toEqual(runCase(backend, k, plain).map(bits));
      }
      const s = backend.alloc('f32', 8), lse = backend.alloc('f32', 2);
      expect(() => k.attention(s, s, s, null, s, lse, 1, 1, 1, 2, 2, 4, 0.5, true, -1)).toThrow(
        new ShapeError('attention: window must be a non-negative integer, got -1'),
      );
      expect(() => k.attentionBackward(s, s, s, null, s, lse, s, s, s, s, 1, 1, 1, 2, 2, 4, 0.5, true, 1.5)).toThrow(
        new ShapeError('attentionBackward: window must be a non-negative integer, got 1.5'),
      );
      backend.free(s);
      backend.free(lse);
    });
  });
});

describe.skipIf(!nativeAvailable().ok)('ALIGN_BLAS picks the BLAS library', () => {
  const addonPath = fileURLToPath(new URL('../../kernels/native/build/Release/aligner_cpu.node', import.meta.url));
  const blasIn = (env: Record<string, string>) => execFileSync(process.execPath, ['-e', `
    const a = require(${JSON.stringify(addonPath)});
    try { a.init(1); process.stdout.write(JSON.stringify({ info: a.blasInfo() })); }
    catch (e) { process.stdout.write(JSON.stringify({ error: e.message })); }
  `], { env: { ...process.env, ...env }, encoding: 'utf8' });

  it('a path that cannot be loaded is an error naming it, never a silent fallback', () => {
    const r = JSON.parse(blasIn({ ALIGN_BLAS: '/nonexistent/libblas.so' })) as { error?: string };
    expect(r.error).toMatch(/^ALIGN_BLAS=\/nonexistent\/libblas\.so: cannot load it \(/);
  });

  it('a library without cblas_sgemm is refused, naming what is missing', () => {
    const r = JSON.parse(blasIn({ ALIGN_BLAS: 'libm.so.6' })) as { error?: string };
    expect(r.error).toBe('ALIGN_BLAS=libm.so.6: it has no cblas_sgemm (nor scipy_cblas_sgemm)');
  });

  it('the system OpenBLAS named by path is the one used', () => {
    let lib = '';
    try {
      lib = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }).split('\n').find((l) => l.includes('libopenblas.so.0'))?.split('=> ')[1]?.trim() ?? '';
    } catch {
      // no ldconfig: nothing to name
    }
    if (!lib) return;
    const r = JSON.parse(blasIn({ ALIGN_BLAS: lib })) as { info?: string };
    expect(r.info).toMatch(/^OpenBLAS /);
  });
});

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADDON = path.join(ROOT, 'kernels/native/build/Release/aligner_cpu.node');
const BLAS_DIR = path.join(ROOT, '.tools/blas');
/** The BLAS settings a child process must not inherit from the one running the tests. */
const BLAS_VARS = ['ALIGN_BLAS', 'ALIGN_BLAS_CHOICE', 'ALIGN_DISABLE_BLAS', 'OPENBLAS_CORETYPE', 'MKL_ENABLE_INSTRUCTIONS'];
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const k of BLAS_VARS) delete out[k];
  return { ...out, ...env };
}

/** The libraries infra/blas.sh installed: [folder, library, expected family]. */
function installedBlas(): { folder: string; lib: string; family: 'openblas' | 'mkl' }[] {
  if (!existsSync(BLAS_DIR)) return [];
  const known = [
    ['libscipy_openblas.so', 'openblas'],
    ['libmkl_rt.so.3', 'mkl'],
  ] as const;
  return readdirSync(BLAS_DIR).flatMap((folder) => {
    const hit = known.find(([lib]) => existsSync(path.join(BLAS_DIR, folder, lib)));
    return hit ? [{ folder, lib: path.join(BLAS_DIR, folder, hit[0]), family: hit[1] }] : [];
  });
}

/** The raw addon in a fresh process with `env`: its blasCore/blasInfo and a checked 33×17×65 matmul. */
function rawAddonIn(env: Record<string, string>): { core?: Omit<BlasCore, 'source'>; info?: string; worst?: number; error?: string } {
  const out = execFileSync(process.execPath, ['-e', `
    const a = require(${JSON.stringify(ADDON)});
    try { a.init(1); } catch (e) { process.stdout.write(JSON.stringify({ error: e.message })); process.exit(0); }
    const M = 33, N = 17, K = 65;
    const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i)), B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i));
    const ha = a.alloc(0, M * K), hb = a.alloc(0, K * N), hc = a.alloc(0, M * N);
    a.write(ha, A); a.write(hb, B);
    a.matmul(ha, hb, hc, 1, M, N, K, false, false, 0, 0);
    const C = a.readSync(hc);
    let worst = 0;
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0; for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
      worst = Math.max(worst, Math.abs(C[i * N + j] - s));
    }
    process.stdout.write(JSON.stringify({ core: a.blasCore(), info: a.blasInfo(), worst }));
  `], { env: childEnv(env), encoding: 'utf8' });
  return JSON.parse(out) as ReturnType<typeof rawAddonIn>;
}

/** kernels/native-backend.ts in a fresh process with `env`: what it loaded, or why it did not; and its stderr. */
function loaderIn(env: Record<string, string>): { core?: BlasCore; info?: string; coretype?: string | null; reason?: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    import { blasCore, blasInfo, nativeAvailable } from ${JSON.stringify(path.join(ROOT, 'kernels/native-backend.ts'))};
    const ok = nativeAvailable();
    process.stdout.write(JSON.stringify(ok.ok ? { core: blasCore(), info: blasInfo(), coretype: process.env.OPENBLAS_CORETYPE ?? null } : { reason: ok.reason }));
  `], { env: childEnv(env), encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) throw new Error(`loader child failed (${r.status}): ${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as object), stderr: r.stderr };
}

describe('the BLAS behind matmul', () => {
  it('a BLAS choice on disk loads (a broken one would skip the native suites, so it fails here)', () => {
    if (!existsSync(ADDON) || !existsSync(DEFAULT_BLAS_CHOICE) || process.env.ALIGN_BLAS) return;
    expect(nativeAvailable()).toEqual({ ok: true });
  });

  it.skipIf(!nativeAvailable().ok)('is not a generic fallback: its kernels use the CPU\'s widest vector ISA (AVX2 or AVX-512)', (ctx) => {
    const isa = cpuIsa();
    const core = blasCore();
    const skip = (why: string) => {
      console.log(`note: BLAS core check skipped: ${why}`);
      ctx.skip(why);
    };
    if (isa === 'baseline') skip('this CPU has neither AVX2 nor AVX-512');
    if (core.family === 'fallback') skip(`no BLAS library is loaded (${core.source}); matmul runs the addon's own GEMM`);
    expect({ info: blasInfo(), isa: core.isa }).toEqual({ info: blasInfo(), isa });
  });

  it('names each OpenBLAS core and MKL code path with the ISA of its kernels; an unknown one is never guessed wider', () => {
    if (!existsSync(ADDON)) return;
    const a = createRequire(import.meta.url)(ADDON) as { blasCoreIsa(family: string, core: string | number): { core: string; isa: string } };
    const openblas = (c: string) => a.blasCoreIsa('openblas', c).isa;
    for (const c of ['SkylakeX', 'Cooperlake', 'SapphireRapids', 'skylakex']) expect(openblas(c), c).toBe('avx512');
    for (const c of ['Haswell', 'Zen', 'haswell']) expect(openblas(c), c).toBe('avx2');
    for (const c of ['Prescott', 'Core2', 'Nehalem', 'Sandybridge', 'Barcelona', 'Bulldozer', 'Piledriver', 'Steamroller', 'Excavator', 'Atom']) {
      expect(openblas(c), c).toBe('baseline');
    }
    for (const c of ['', 'GraniteRapids', 'NeoverseV2']) expect(openblas(c), c).toBe('unknown');
    const mkl = (code: number) => a.blasCoreIsa('mkl', code);
    expect([4, 5, 6, 7, 8, 9].map((c) => mkl(c).isa)).toEqual(Array(6).fill('baseline'));
    expect(mkl(10)).toEqual({ core: 'AVX2', isa: 'avx2' });
    expect(mkl(12)).toEqual({ core: 'AVX512', isa: 'avx512' });
    expect(mkl(14)).toEqual({ core: 'AVX512_E1', isa: 'avx512' });
    expect(mkl(15)).toEqual({ core: 'branch 15', isa: 'unknown' });
    expect(mkl(0).isa).toBe('unknown');
  });

  describe.skipIf(!existsSync(ADDON))('each library infra/blas.sh installed', () => {
    const installed = installedBlas();
    it.skipIf(installed.length === 0)('loads by ALIGN_BLAS=<path>, reports its family and kernels, and multiplies correctly', () => {
      for (const { folder, lib, family } of installed) {
        const r = rawAddonIn({ ALIGN_BLAS: lib });
        expect(r.error, folder).toBeUndefined();
        expect(r.core, folder).toMatchObject({ family, path: lib });
        expect(r.info, folder).toMatch(family === 'mkl' ? /^oneMKL \d{4}\.\d+ \([A-Z0-9_]+ code path, sequential\)$/ : /^OpenBLAS \d/);
        expect(r.worst, folder).toBeLessThan(1e-4);
        if (cpuIsa() !== 'baseline') expect(r.core!.isa, folder).toBe(cpuIsa());
      }
    });

    const openblas = installed.find((c) => c.family === 'openblas');
    it.skipIf(!openblas || cpuIsa() === 'baseline')('OPENBLAS_CORETYPE forces an OpenBLAS core, and blasCore names it with its ISA', () => {
      for (const [forced, isa] of [['Haswell', 'avx2'], ['Sandybridge', 'baseline']] as const) {
        const r = rawAddonIn({ ALIGN_BLAS: openblas!.lib, OPENBLAS_CORETYPE: forced });
        expect(r.core).toMatchObject({ family: 'openblas', core: forced, isa });
        expect(r.info).toContain(`(OPENBLAS_CORETYPE=${forced})`);
        expect(r.worst).toBeLessThan(1e-4);
      }
    });

    const mkl = installed.find((c) => c.family === 'mkl');
    it.skipIf(!mkl || cpuIsa() === 'baseline')('MKL reports the code path it dispatches to (MKL_ENABLE_INSTRUCTIONS=AVX2 caps it)', () => {
      const r = rawAddonIn({ ALIGN_BLAS: mkl!.lib, MKL_ENABLE_INSTRUCTIONS: 'AVX2' });
      expect(r.core).toMatchObject({ family: 'mkl', core: 'AVX2', isa: 'avx2' });
      expect(r.info).toMatch(/^oneMKL .* \(AVX2 code path, sequential\)$/);
    });
  });

  describe.skipIf(!existsSync(ADDON))('the choice file (ALIGN_BLAS_CHOICE names another)', () => {
    let dir = '';
    beforeAll(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-blas-choice-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const choice = (name: string, body: object) => {
      const file = path.join(dir, name);
      writeFileSync(file, JSON.stringify(body));
      return file;
    };
    const here = () => ({ cpu: os.cpus()[0]?.model ?? 'unknown', cpuIsa: cpuIsa() });

    it('naming a library that is not there is an error naming both files and saying what to do, never a fallback', () => {
      const file = choice('missing.json', { path: '/nonexistent/libopenblas.so.0', env: {}, ...here() });
      const r = loaderIn({ ALIGN_BLAS_CHOICE: file });
      expect(r.core).toBeUndefined();
      expect(r.reason).toMatch(new RegExp(`^the BLAS choice ${file} names /nonexistent/libopenblas\\.so\\.0: cannot load it \\(.*No such file`));
      expect(r.reason).toContain(`; rerun \`npm run setup\` to install and measure the BLAS libraries again, or delete ${file} to use the system BLAS`);
    });

    it('a part of the library missing (MKL would exit the process) is the same kind of error, before loading', () => {
      const lib = installedBlas()[0]?.lib ?? '/lib/libc.so.6';
      const file = choice('part.json', { path: lib, files: [lib, '/nonexistent/libmkl_avx512.so.3'], ...here() });
      const r = loaderIn({ ALIGN_BLAS_CHOICE: file });
      expect(r.reason).toBe(
        `the BLAS choice ${file} names ${lib}, but /nonexistent/libmkl_avx512.so.3 is missing; ` +
          `rerun \`npm run setup\` to install and measure the BLAS libraries again, or delete ${file} to use the system BLAS`,
      );
      expect(loaderIn({ ALIGN_BLAS_CHOICE: path.join(dir, 'none.json') }).reason).toBe(`ALIGN_BLAS_CHOICE=${path.join(dir, 'none.json')}: no such file`);
      expect(loaderIn({ ALIGN_BLAS_CHOICE: choice('bad.json', { env: {} }) }).reason).toMatch(/^the BLAS choice .*bad\.json cannot be read \(it has no "path"\); rerun/);
      expect(loaderIn({ ALIGN_BLAS_CHOICE: choice('files.json', { path: lib, files: lib }) }).reason).toMatch(/cannot be read \("files" is not a list of paths\); rerun/);
      expect(loaderIn({ ALIGN_BLAS_CHOICE: choice('env.json', { path: lib, env: 'OPENBLAS_CORETYPE=Haswell' }) }).reason).toMatch(/cannot be read \("env" is not an object of strings\); rerun/);
    });

    it('ALIGN_DISABLE_BLAS=1 wins over a broken or missing choice: the addon loads on its own GEMM', () => {
      const broken = loaderIn({ ALIGN_BLAS_CHOICE: choice('broken.json', { env: {} }), ALIGN_DISABLE_BLAS: '1' });
      expect(broken.reason).toBeUndefined();
      expect(broken.info).toBe('fallback');
      expect(loaderIn({ ALIGN_BLAS_CHOICE: path.join(dir, 'none.json'), ALIGN_DISABLE_BLAS: '1' }).info).toBe('fallback');
    });

    const openblas = installedBlas().find((c) => c.family === 'openblas');
    it.skipIf(!openblas || cpuIsa() === 'baseline')('its env is set for the load only; on another CPU it is dropped with a warning; ALIGN_BLAS and ALIGN_BLAS=system win', () => {
      const forced = choice('forced.json', { path: openblas!.lib, env: { OPENBLAS_CORETYPE: 'Sandybridge' }, ...here() });
      const r = loaderIn({ ALIGN_BLAS_CHOICE: forced });
      expect(r.core).toMatchObject({ family: 'openblas', core: 'Sandybridge', path: openblas!.lib, source: forced });
      expect(r.coretype).toBeNull(); // not left in the environment for child processes
      expect(r.stderr).toBe('');

      const elsewhere = choice('elsewhere.json', { path: openblas!.lib, env: { OPENBLAS_CORETYPE: 'Sandybridge' }, cpu: 'Another CPU', cpuIsa: 'avx2' });
      const moved = loaderIn({ ALIGN_BLAS_CHOICE: elsewhere });
      expect(moved.core).toMatchObject({ family: 'openblas', path: openblas!.lib, isa: cpuIsa() });
      expect(moved.stderr).toContain(`the BLAS choice ${elsewhere} was measured on Another CPU (avx2)`);
      expect(moved.stderr).toContain('without OPENBLAS_CORETYPE=Sandybridge; run `npm run setup` to measure here');

      expect(loaderIn({ ALIGN_BLAS_CHOICE: forced, ALIGN_BLAS: 'system' }).core?.source).toBe('ALIGN_BLAS=system');
      expect(loaderIn({ ALIGN_BLAS_CHOICE: forced, OPENBLAS_CORETYPE: 'Haswell' }).core).toMatchObject({ core: 'Haswell' }); // the user's own setting wins
      const named = loaderIn({ ALIGN_BLAS_CHOICE: path.join(dir, 'missing.json'), ALIGN_BLAS: openblas!.lib });
      expect(named.core).toMatchObject({ path: openblas!.lib, source: 'ALIGN_BLAS' });
    });
  });
});

describe.skipIf(!nativeAvailable().ok)('kernel builds: one per ISA, picked at load', () => {
  const addonPath = fileURLToPath(new URL('../../kernels/native/build/Release/aligner_cpu.node', import.meta.url));
  const isaIn = (env: Record<string, string>) => JSON.parse(execFileSync(process.execPath, ['-e', `
    const a = require(${JSON.stringify(addonPath)});
    try { a.init(1); process.stdout.write(JSON.stringify({ isa: a.kernelIsa() })); }
    catch (e) { process.stdout.write(JSON.stringify({ error: e.message })); }
  `], { env: { ...process.env, ...env }, encoding: 'utf8' })) as { isa?: string; error?: string };

  it('the default is the widest build this CPU runs, and every CPU runs the baseline', () => {
    expect(isaIn({ ALIGN_ISA: '' }).isa).toBe(cpuIsa());
    expect(kernelIsas()[0]).toBe(cpuIsa());
    expect(kernelIsas().at(-1)).toBe('baseline');
  });

  it('ALIGN_ISA forces each build the CPU has', () => {
    for (const isa of kernelIsas()) expect(isaIn({ ALIGN_ISA: isa }).isa).toBe(isa);
  });

  it('an unknown ALIGN_ISA is an error at load naming the choices', () => {
    expect(isaIn({ ALIGN_ISA: 'sse9' }).error).toBe("ALIGN_ISA=sse9: unknown ISA 'sse9'; use avx512, avx2 or baseline");
    expect(() => setKernelIsa('sse9' as never)).toThrow(new NativeError("setKernelIsa: unknown ISA 'sse9'; use avx512, avx2 or baseline"));
  });

  const missing = (['avx512', 'avx2'] as const).find((isa) => !kernelIsas().includes(isa));
  it.skipIf(!missing)(`an ISA this CPU lacks is an error at load, not a crash (${missing ?? 'this CPU has them all: nothing to force'})`, () => {
    expect(isaIn({ ALIGN_ISA: missing! }).error).toBe(`ALIGN_ISA=${missing}: this CPU cannot run the ${missing} kernels (its widest ISA is ${cpuIsa()})`);
  });

  // Every NaN counts as one: which operand's NaN an x86 instruction passes on (and its sign) is
  // not something the baseline's lane-by-lane code reproduces, nor needs to.
  const numberBits = (a: HostArray) => bits(a).map((b, i) => (Number.isNaN(a[i]) ? 0x7fc00000 : b));
  it.skipIf(!kernelIsas().includes('avx2'))('the baseline build gives the AVX2 build\'s bits on every kernel case (same 8 lanes, same roundings)', () => {
    const backend = nativeBackend();
    const k = backend.kernels as Kernels;
    const cases = kernelCases();
    const avx2 = withKernelIsa('avx2', () => cases.map((c) => runCase(backend, k, c).map(numberBits)));
    const baseline = withKernelIsa('baseline', () => cases.map((c) => runCase(backend, k, c).map(numberBits)));
    cases.forEach((c, i) => expect(baseline[i], c.name).toEqual(avx2[i]));
  });
});

describe.skipIf(!nativeAvailable().ok)('CPU facts the benchmarks report', () => {
  it('cpuIsa is the widest vector ISA /proc/cpuinfo lists (avx512 f/dq/bw/vl → avx512, avx2 + fma → avx2)', () => {
    let flags: string[];
    try {
      flags = (readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/);
    } catch {
      return; // not Linux: nothing to compare against
    }
    const avx512 = ['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'].every((f) => flags.includes(f));
    const want = avx512 ? 'avx512' : flags.includes('avx2') && flags.includes('fma') ? 'avx2' : 'baseline';
    expect(cpuIsa()).toBe(want);
  });

  it('the FMA peak probe runs with that ISA and returns a finite positive rate', () => {
    const g = fmaPeakGflops(1, 20);
    expect(Number.isFinite(g) && g > 0).toBe(true);
  });
});
