/**
 * Without a GPU: every kernel launch the CUDA backend makes passes exactly the parameter bytes
 * its kernel declares. The backend runs every op-suite case (forward and backward, plus the
 * bf16 and optimizer kernels) against a recording stand-in for the addon; each launch's packed
 * fields (offset and size) are compared with the kernel's parameter list in the PTX that nvcc
 * emits for it (each parameter at its alignment, as cuLaunchKernel's argument buffer must be). Launch
 * shapes are checked too (block ≤ 1024 threads, a multiple of 32; grid ≥ 1; y ≤ 65535).
 * Skipped (with the reason) where nvcc is not installed; see cuda-compile.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

import { findNvcc } from './cuda-tools.js';
import { bf16Parity, opParity } from '../../bench/device-parity.js';
import type { Storage } from '../../kernels/backend.js';
import { cudaBackendWith, setCudaArgTrace } from '../../kernels/cuda-backend.js';
import type { CudaAddon } from '../../kernels/cuda-probe.js';
import { AdamW, clipGradNorm, tensor, tidy } from '../../kernels/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const kernelDir = path.join(root, 'kernels/cuda');

interface Param { offset: number; size: number; struct: boolean }

/** Kernel name → its parameters' offsets and sizes, from `.entry name(.param …, …)` in the PTX. */
function paramLayouts(ptx: string): Map<string, Param[]> {
  const layouts = new Map<string, Param[]>();
  for (const m of ptx.matchAll(/\.entry\s+(\w+)\(([^)]*)\)/g)) {
    let end = 0;
    const params: Param[] = [];
    for (const p of m[2]!.split(',').map((x) => x.trim()).filter(Boolean)) {
      const struct = /\.align\s+(\d+)\s+\.b8\s+\w+\[(\d+)\]/.exec(p);
      const scalar = /\.param\s+\.[usbf](8|16|32|64)\b/.exec(p);
      const [align, size] = struct ? [Number(struct[1]), Number(struct[2])] : scalar ? [Number(scalar[1]) / 8, Number(scalar[1]) / 8] : [NaN, NaN];
      const offset = Math.ceil(end / align) * align;
      params.push({ offset, size, struct: struct !== null });
      end = offset + size;
    }
    layouts.set(m[1]!, params);
  }
  return layouts;
}

/** Why a packed field list does not match the declared parameters, or null when it does. */
function mismatch(fields: readonly (readonly [number, number])[], params: Param[]): string | null {
  for (const p of params) {
    const inside = fields.filter(([o]) => o >= p.offset && o < p.offset + p.size);
    if (p.struct ? inside[0]?.[0] !== p.offset : inside.length !== 1 || inside[0]![1] !== p.size) {
      return `parameter at ${p.offset} (${p.size} bytes${p.struct ? ', struct' : ''}) packed as ${JSON.stringify(inside)}`;
    }
  }
  const stray = fields.filter(([o]) => !params.some((p) => o >= p.offset && o < p.offset + p.size));
  return stray.length > 0 ? `fields outside every parameter: ${JSON.stringify(stray)}` : null;
}

interface Launch { name: string; bytes: number; grid: number[]; block: number; shared: number; fields: [number, number][] }

/** A stand-in addon: memory is host-side and never computed on; launches are recorded. */
function recordingAddon(launches: Launch[], lastFields: { value: [number, number][] }): CudaAddon {
  let next = 1 << 20;
  const sizes = new Map<number, number>();
  const functions: string[] = [];
  const stub = (): never => {
    throw new Error('not used by this test');
  };
  return {
    cudaProbe: stub,
    cudaInit: () => ({ name: 'recorder', major: 9, minor: 0, totalMemory: 80e9, multiprocessors: 132, maxSharedOptin: 227 * 1024, driverVersion: 13000, errorWord: 256 }),
    cudaAlloc: (bytes) => {
      const p = next;
      next += Math.ceil(bytes / 512) * 512 + 512;
      sizes.set(p, bytes);
      return p;
    },
    cudaFree: (p) => {
      if (!sizes.delete(p)) throw new Error(`free of unknown pointer ${p}`);
    },
    cudaStats: () => ({ liveBuffers: sizes.size, liveBytes: 0, cachedBytes: 0, peakBytes: 0, deviceAllocs: 0, cacheHits: 0 }),
    cudaEmptyCache: () => undefined,
    cudaMemInfo: () => ({ free: 0, total: 0 }),
    cudaWrite: () => undefined,
    cudaCopy: () => undefined,
    cudaZero: () => undefined,
    cudaReadSync: (_p, numel, dtype) => (dtype === 2 ? new Int32Array(numel) : new Float32Array(numel)),
    cudaRead: (_p, numel, dtype) => Promise.resolve(dtype === 2 ? new Int32Array(numel) : new Float32Array(numel)),
    cudaSynchronize: () => undefined,
    cudaCompile: () => ({ cubin: new Uint8Array([0x7f, 0x45, 0x4c, 0x46]), log: '' }),
    cudaLoadModule: () => 0,
    cudaGetFunction: (_m, name) => functions.push(name) - 1,
    cudaArgBuffer: () => undefined,
    cudaLaunch: (fn, gx, gy, gz, bx, _by, _bz, shared, argBytes) => {
      launches.push({ name: functions[fn]!, bytes: argBytes, grid: [gx, gy, gz], block: bx, shared, fields: lastFields.value });
    },
    cudaMatmul: () => undefined,
    ncclUniqueId: () => new Uint8Array(128),
    ncclGroupOpen: async () => 1,
    ncclGroupClose: () => undefined,
    ncclCollective: async () => 0,
    ncclSendRecv: async () => 0,
  };
}

const nvcc = findNvcc();
if (!nvcc) process.stdout.write('[cuda-args] skipping: no nvcc (see test/kernels/cuda-compile.test.ts for the install command)\n');

describe.skipIf(!nvcc)('CUDA launches match their kernels’ parameter lists', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'align-ptx-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const oldCache = process.env.ALIGN_CUDA_CACHE;
  afterAll(() => {
    setCudaArgTrace(null);
    if (oldCache === undefined) delete process.env.ALIGN_CUDA_CACHE;
    else process.env.ALIGN_CUDA_CACHE = oldCache;
  });

  it('for every launch of the op suite, the bf16 kernels and the optimizer', () => {
    const declared = new Map<string, Param[]>();
    for (const f of readdirSync(kernelDir).filter((x) => x.endsWith('.cu'))) {
      const out = path.join(tmp, f.replace(/\.cu$/, '.ptx'));
      const r = spawnSync(nvcc!, ['-ptx', '-arch=compute_90', '-std=c++17', '-I', kernelDir, path.join(kernelDir, f), '-o', out], { encoding: 'utf8' });
      expect(r.stderr, f).toBe('');
      for (const [k, v] of paramLayouts(readFileSync(out, 'utf8'))) declared.set(k, v);
    }
    process.env.ALIGN_CUDA_CACHE = path.join(tmp, 'cache');
    const launches: Launch[] = [];
    const lastFields = { value: [] as [number, number][] };
    setCudaArgTrace((fields) => {
      lastFields.value = fields.map(([o, n]) => [o, n]);
    });
    const cuda = cudaBackendWith(() => recordingAddon(launches, lastFields));
    // Values are never computed here; the parity results are ignored, only the launches matter.
    opParity(cuda);
    bf16Parity(cuda);
    tidy(() => {
      const p = [tensor([1, 2, 3], [3], { backend: cuda }).keep(), tensor([4, 5], [2], { backend: cuda }).keep()];
      for (const t of p) t.grad = tensor([0.1, 0.2, 0.3].slice(0, t.numel), t.shape, { backend: cuda }).keep();
      clipGradNorm(p, 1.0).toArraySync();
      const opt = new AdamW(p, { lr: 1e-3 });
      opt.update();
      cuda.synchronize(); // flushes the deferred multi-tensor AdamW
      opt.dispose();
      for (const t of p) {
        t.grad!.dispose();
        t.dispose();
      }
    });
    const s: Storage = cuda.alloc('bf16', 10);
    cuda.kernels.fill!(s, 10, 1.5);
    cuda.free(s);

    const names = new Set(launches.map((l) => l.name));
    for (const k of ['adamwMulti', 'clipGradNormPartial', 'clipGradNormFinish', 'clipGradNormScale', 'attention_f32',
      'attentionBackwardDkv_f32', 'embeddingBackwardSortPass', 'tokenLogprobs_bf16', 'fill_u16', 'binary_f32', 'permute_u32']) {
      expect(names, k).toContain(k);
    }
    const wrong = launches.flatMap((l) => {
      const params = declared.get(l.name);
      if (!params) return [`${l.name}: no such kernel in the PTX`];
      const last = params.at(-1);
      const total = last ? last.offset + last.size : 0;
      const why = mismatch(l.fields, params) ?? (l.bytes === total ? null : `packed ${l.bytes} bytes, declared ${total}`);
      return why ? [`${l.name}: ${why}`] : [];
    });
    expect([...new Set(wrong)]).toEqual([]);
    const badShape = launches.filter((l) => l.block > 1024 || l.block % 32 !== 0 || l.grid.some((g) => !(g >= 1)) || l.grid[1]! > 65535 || l.shared > 227 * 1024);
    expect(badShape.map((l) => `${l.name} grid ${l.grid} block ${l.block} shared ${l.shared}`)).toEqual([]);
  }, 300_000);
});
