/**
 * The Kernels contract (kernels/backend.ts) on the GPU: each entry validates its storages
 * (sizes, dtypes: ShapeError/DTypeError as on the CPU backend), packs the parameters of its
 * kernel in kernels/cuda/<family>.cu and launches it on the one stream. Float kernels pick the
 * `_f32` or `_bf16` variant from the storages' dtype; matmul goes to cuBLASLt in the addon.
 * Launch shapes: elementwise kernels use 256-thread blocks over a grid-stride loop; row kernels
 * (softmax, norms, token log-probs) one block per row, sized to the row.
 */
import type { BinaryKind, Kernels, UnaryKind } from './backend.js';
import { BINARY_KINDS, UNARY_KINDS } from './backend.js';
import type { CudaEngine, FloatName } from './cuda-engine.js';
import {
  ATTN_ROWS, CLIP_BLOCKS, bitsOf, chunking, expectDType as expect, floatType, grid1, need, nextPow2, ptrOf, rows,
} from './cuda-engine.js';
import { cudaCall } from './cuda-probe.js';
import type { Storage } from './backend.js';
import { bytesPerElement } from './dtype.js';
import { DTypeError, ShapeError } from './errors.js';

const UNARY_CODES = new Map<UnaryKind, number>(UNARY_KINDS.map((k, i) => [k, i]));
const BINARY_CODES = new Map<BinaryKind, number>(BINARY_KINDS.map((k, i) => [k, i]));

export function makeKernels(e: CudaEngine): Kernels {
  const a = e.args;
  const scratch = (bytes: number): number => e.alloc(bytes);
  const release = (p: number): void => e.free(p);

  /** Sum partial [chunks, m] (f32) into out (float type t), in chunk order. */
  const finishSum = (partial: number, out: number, t: FloatName, m: number, chunks: number): void => {
    a.reset().ptr(partial).ptr(out).i64(m).i64(chunks);
    e.launch('reduce', `reduceSumFinish_${t}`, grid1(m), 1, 256);
  };

  const attnDims = (B: number, Hq: number, Hkv: number, T: number, S: number, D: number, scale: number, causal: boolean, window: number): void => {
    a.struct(8).i64(B).i64(Hq).i64(Hkv).i64(T).i64(S).i64(D).f32(scale).i32(causal ? 1 : 0).i32(window).struct(8);
  };
  const checkAttention = (op: string, q: Storage, k: Storage, v: Storage, mask: Storage | null, B: number, Hq: number, Hkv: number, T: number, S: number, D: number): FloatName => {
    const t = floatType(op, q, k, v);
    if (D > 256) throw new ShapeError(`${op}: head dim ${D} > 256 is not supported on cuda`);
    if (Hkv === 0 || Hq % Hkv !== 0) throw new ShapeError(`${op}: ${Hq} query heads are not a multiple of ${Hkv} kv heads`);
    need(op, 'q', q, B * Hq * T * D);
    need(op, 'k', k, B * Hkv * S * D);
    need(op, 'v', v, B * Hkv * S * D);
    if (mask) {
      expect(op, 'mask', mask, 'f32');
      need(op, 'mask', mask, B * S);
    }
    return t;
  };
  const attnShared = (D: number, extraRows: number, extraTile: number): number => 4 * (2 * 32 * (D + 1) + extraRows * ATTN_ROWS * D + extraTile * 32);

  return {
    fill(out, n, value) {
      need('fill', 'out', out, n);
      if (n === 0) return;
      if (Object.is(value, 0)) {
        e.flush();
        cudaCall(() => e.addon.cudaZero(ptrOf(out), n * bytesPerElement(out.dtype)));
        return;
      }
      a.reset().ptr(ptrOf(out)).i64(n).u32(bitsOf(out.dtype, value));
      e.launch('elementwise', out.dtype === 'bf16' ? 'fill_u16' : 'fill_u32', grid1(n), 1, 256);
    },
    copy(src, dst, n) {
      if (src.dtype !== dst.dtype) throw new DTypeError(`copy: src is ${src.dtype}, dst is ${dst.dtype}`);
      need('copy', 'src', src, n);
      need('copy', 'dst', dst, n);
      e.flush();
      cudaCall(() => e.addon.cudaCopy(ptrOf(dst), ptrOf(src), n * bytesPerElement(src.dtype)));
    },
    cast(src, dst, n) {
      need('cast', 'src', src, n);
      need('cast', 'dst', dst, n);
      if (n === 0) return;
      if (src.dtype === dst.dtype) {
        e.flush();
        cudaCall(() => e.addon.cudaCopy(ptrOf(dst), ptrOf(src), n * bytesPerElement(src.dtype)));
        return;
      }
      a.reset().ptr(ptrOf(src)).ptr(ptrOf(dst)).i64(n);
      e.launch('elementwise', `cast_${src.dtype}_${dst.dtype}`, grid1(n), 1, 256);
    },
    unary(kind, x, out, n) {
      const t = floatType(kind, x, out);
      need(kind, 'x', x, n);
      need(kind, 'out', out, n);
      if (n === 0) return;
      a.reset().i32(UNARY_CODES.get(kind)!).ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n);
      e.launch('elementwise', `unary_${t}`, grid1(n), 1, 256);
    },
    unaryBackward(kind, x, y, g, gx, n) {
      const op = `${kind}.backward`;
      const t = floatType(op, x, y, g, gx);
      for (const [w, s] of [['x', x], ['y', y], ['g', g], ['gx', gx]] as const) need(op, w, s, n);
      if (n === 0) return;
      a.reset().i32(UNARY_CODES.get(kind)!).ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(n);
      e.launch('elementwise', `unaryBackward_${t}`, grid1(n), 1, 256);
    },
    affine(x, out, n, scale, shift) {
      const t = floatType('affine', x, out);
      need('affine', 'x', x, n);
      need('affine', 'out', out, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n).f64(scale).f64(shift);
      e.launch('elementwise', `affine_${t}`, grid1(n), 1, 256);
    },
    powScalar(x, out, n, exponent) {
      const t = floatType('powScalar', x, out);
      need('powScalar', 'x', x, n);
      need('powScalar', 'out', out, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n).f64(exponent);
      e.launch('elementwise', `powScalar_${t}`, grid1(n), 1, 256);
    },
    binary(kind, x, y, out, outShape, aStrides, bStrides) {
      const t = floatType(kind, x, y, out);
      const rank = outShape.length;
      if (rank > 8 || aStrides.length !== rank || bStrides.length !== rank) {
        throw new ShapeError(`binary: rank ${rank} with ${aStrides.length}/${bStrides.length} strides (rank ≤ 8)`);
      }
      const n = outShape.reduce((p, d) => p * d, 1);
      if (n === 0) return;
      let aNeed = 1, bNeed = 1, contiguousA = true, contiguousB = true, stride = 1;
      for (let d = rank - 1; d >= 0; d--) {
        aNeed += (outShape[d]! - 1) * aStrides[d]!;
        bNeed += (outShape[d]! - 1) * bStrides[d]!;
        if (outShape[d]! > 1) {
          contiguousA &&= aStrides[d] === stride;
          contiguousB &&= bStrides[d] === stride;
        }
        stride *= outShape[d]!;
      }
      need(kind, 'a', x, aNeed);
      need(kind, 'b', y, bNeed);
      need(kind, 'out', out, n);
      const code = BINARY_CODES.get(kind)!;
      if (contiguousA && contiguousB) {
        a.reset().i32(code).ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(out)).i64(n);
        e.launch('elementwise', `binarySame_${t}`, grid1(n), 1, 256);
        return;
      }
      a.reset().i32(code).ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(out)).i64(n).struct(4).i32(rank);
      for (const list of [outShape, aStrides, bStrides]) for (let d = 0; d < 8; d++) a.i32(list[d] ?? 0);
      e.launch('elementwise', `binary_${t}`, grid1(n), 1, 256);
    },
    reduceSum(x, out, outer, n, inner) {
      const t = floatType('sum', x, out);
      need('sum', 'x', x, outer * n * inner);
      need('sum', 'out', out, outer * inner);
      const m = outer * inner;
      if (m === 0) return;
      if (inner === 1) {
        a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(outer).i64(n);
        rows(e, 'reduce', `reduceSumRows_${t}`, outer, n);
        return;
      }
      const { chunks, len } = chunking(n, m);
      const partial = scratch(chunks * m * 4);
      a.reset().ptr(ptrOf(x)).ptr(partial).i64(outer).i64(n).i64(inner).i64(len);
      e.launch('reduce', `reduceSumCols_${t}`, grid1(m), chunks, 256);
      finishSum(partial, ptrOf(out), t, m, chunks);
      release(partial);
    },
    reduceMax(x, out, outer, n, inner) {
      const t = floatType('max', x, out);
      need('max', 'x', x, outer * n * inner);
      need('max', 'out', out, outer * inner);
      if (outer * inner === 0) return;
      if (inner === 1) {
        a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(outer).i64(n);
        rows(e, 'reduce', `reduceMaxRows_${t}`, outer, n);
        return;
      }
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(outer).i64(n).i64(inner);
      e.launch('reduce', `reduceMaxCols_${t}`, grid1(outer * inner), 1, 256);
    },
    reduceMaxBackward(x, y, g, gx, outer, n, inner) {
      const t = floatType('max.backward', x, y, g, gx);
      need('max.backward', 'x', x, outer * n * inner);
      need('max.backward', 'gx', gx, outer * n * inner);
      need('max.backward', 'y', y, outer * inner);
      need('max.backward', 'g', g, outer * inner);
      if (outer * inner === 0 || n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(outer).i64(n).i64(inner);
      e.launch('reduce', `reduceMaxBackward_${t}`, grid1(outer * inner), 1, 256);
    },
    matmul(x, y, out, batch, M, N, K, transA, transB, strideA, strideB) {
      const tin = floatType('matmul', x, y);
      if (out.dtype !== 'f32' && out.dtype !== 'bf16') throw new DTypeError(`matmul: out must be f32 or bf16, got ${out.dtype}`);
      if (batch > 0 && M > 0 && N > 0) {
        need('matmul', 'out', out, batch * M * N);
        if (K > 0) {
          need('matmul', 'a', x, (batch - 1) * strideA + M * K);
          need('matmul', 'b', y, (batch - 1) * strideB + K * N);
        }
      }
      e.flush();
      const code = (t: string): number => (t === 'bf16' ? 1 : 0);
      cudaCall(() => e.addon.cudaMatmul(ptrOf(x), ptrOf(y), ptrOf(out), code(tin), code(out.dtype), batch, M, N, K, transA, transB, strideA, strideB));
    },
    permute(x, out, shape, perm) {
      const rank = shape.length;
      if (rank > 8 || perm.length !== rank) throw new ShapeError(`permute: rank ${rank} with a perm of ${perm.length} (rank ≤ 8)`);
      if (x.dtype !== out.dtype) throw new DTypeError(`permute: x is ${x.dtype}, out is ${out.dtype}`);
      const n = shape.reduce((p, d) => p * d, 1);
      need('permute', 'x', x, n);
      need('permute', 'out', out, n);
      if (n === 0) return;
      const inStrides = new Array<number>(rank);
      for (let d = rank - 1, s = 1; d >= 0; d--) {
        inStrides[d] = s;
        s *= shape[d]!;
      }
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n).struct(4).i32(rank);
      for (let d = 0; d < 8; d++) a.i32(d < rank ? shape[perm[d]!]! : 1);
      for (let d = 0; d < 8; d++) a.i32(d < rank ? inStrides[perm[d]!]! : 0);
      e.launch('layout', x.dtype === 'bf16' ? 'permute_u16' : 'permute_u32', grid1(n), 1, 256);
    },
    copyBlock(src, dst, outer, len, inner, srcAxis, srcOffset, dstAxis, dstOffset) {
      if (src.dtype !== dst.dtype) throw new DTypeError(`copyBlock: src is ${src.dtype}, dst is ${dst.dtype}`);
      const total = outer * len * inner;
      if (total === 0) return;
      need('copyBlock', 'src', src, ((outer - 1) * srcAxis + srcOffset + len) * inner);
      need('copyBlock', 'dst', dst, ((outer - 1) * dstAxis + dstOffset + len) * inner);
      a.reset().ptr(ptrOf(src)).ptr(ptrOf(dst)).i64(outer).i64(len).i64(inner).i64(srcAxis).i64(srcOffset).i64(dstAxis).i64(dstOffset);
      e.launch('layout', src.dtype === 'bf16' ? 'copyBlock_u16' : 'copyBlock_u32', grid1(total), 1, 256);
    },
    embedding(weight, ids, out, n, C, V) {
      const t = floatType('embedding', weight, out);
      expect('embedding', 'ids', ids, 'i32');
      need('embedding', 'weight', weight, V * C);
      need('embedding', 'ids', ids, n);
      need('embedding', 'out', out, n * C);
      if (n * C === 0) return;
      a.reset().ptr(ptrOf(weight)).ptr(ptrOf(ids)).ptr(ptrOf(out)).i64(n).i64(C).i64(V).ptr(e.err);
      e.launch('layout', `embedding_${t}`, grid1(n * C), 1, 256);
    },
    embeddingBackward(g, ids, gw, n, C, V) {
      const t = floatType('embeddingBackward', g, gw);
      expect('embeddingBackward', 'ids', ids, 'i32');
      need('embeddingBackward', 'g', g, n * C);
      need('embeddingBackward', 'ids', ids, n);
      need('embeddingBackward', 'gw', gw, V * C);
      if (V * C === 0) return;
      const m = nextPow2(n);
      const keys = scratch(m * 8), runs = scratch(2 * V * 4);
      a.reset().ptr(ptrOf(ids)).ptr(keys).i64(n).i64(m).i64(V).ptr(e.err);
      e.launch('layout', 'embeddingBackwardKeys', grid1(m), 1, 256);
      for (let size = 2; size <= m; size *= 2) {
        for (let stride = size >> 1; stride > 0; stride >>= 1) {
          a.reset().ptr(keys).i64(m).i64(size).i64(stride);
          e.launch('layout', 'embeddingBackwardSortPass', grid1(m), 1, 256);
        }
      }
      cudaCall(() => e.addon.cudaZero(runs, 2 * V * 4));
      a.reset().ptr(keys).ptr(runs).ptr(runs + V * 4).i64(Math.max(n, 1)).i64(m);
      if (n > 0) e.launch('layout', 'embeddingBackwardRuns', grid1(m), 1, 256);
      a.reset().ptr(ptrOf(g)).ptr(keys).ptr(runs).ptr(runs + V * 4).ptr(ptrOf(gw)).i64(Math.max(n, 1)).i64(C).i64(V);
      e.launch('layout', `embeddingBackward_${t}`, grid1(V * C), 1, 256);
      release(keys);
      release(runs);
    },
    softmax(x, out, nRows, n) {
      const t = floatType('softmax', x, out);
      need('softmax', 'x', x, nRows * n);
      need('softmax', 'out', out, nRows * n);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `softmax_${t}`, nRows, n);
    },
    softmaxBackward(y, g, gx, nRows, n) {
      const t = floatType('softmax.backward', y, g, gx);
      for (const [w, s] of [['y', y], ['g', g], ['gx', gx]] as const) need('softmax.backward', w, s, nRows * n);
      a.reset().ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `softmaxBackward_${t}`, nRows, n);
    },
    logSoftmax(x, out, nRows, n) {
      const t = floatType('logSoftmax', x, out);
      need('logSoftmax', 'x', x, nRows * n);
      need('logSoftmax', 'out', out, nRows * n);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `logSoftmax_${t}`, nRows, n);
    },
    logSoftmaxBackward(y, g, gx, nRows, n) {
      const t = floatType('logSoftmax.backward', y, g, gx);
      for (const [w, s] of [['y', y], ['g', g], ['gx', gx]] as const) need('logSoftmax.backward', w, s, nRows * n);
      a.reset().ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `logSoftmaxBackward_${t}`, nRows, n);
    },
    tokenLogprobs(logits, targets, out, lse, nRows, V, ignoreIndex) {
      const t = floatType('tokenLogprobs', logits);
      expect('tokenLogprobs', 'targets', targets, 'i32');
      expect('tokenLogprobs', 'out', out, 'f32');
      expect('tokenLogprobs', 'lse', lse, 'f32');
      need('tokenLogprobs', 'logits', logits, nRows * V);
      for (const [w, s] of [['targets', targets], ['out', out], ['lse', lse]] as const) need('tokenLogprobs', w, s, nRows);
      a.reset().ptr(ptrOf(logits)).ptr(ptrOf(targets)).ptr(ptrOf(out)).ptr(ptrOf(lse)).i64(nRows).i64(V).i32(ignoreIndex).ptr(e.err);
      rows(e, 'softmax', `tokenLogprobs_${t}`, nRows, V);
    },
    tokenLogprobsBackward(logits, targets, lse, g, gx, nRows, V, ignoreIndex) {
      const op = 'tokenLogprobs.backward';
      const t = floatType(op, logits, gx);
      expect(op, 'targets', targets, 'i32');
      expect(op, 'lse', lse, 'f32');
      expect(op, 'g', g, 'f32');
      need(op, 'logits', logits, nRows * V);
      need(op, 'gx', gx, nRows * V);
      for (const [w, s] of [['targets', targets], ['lse', lse], ['g', g]] as const) need(op, w, s, nRows);
      a.reset().ptr(ptrOf(logits)).ptr(ptrOf(targets)).ptr(ptrOf(lse)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(V).i32(ignoreIndex).ptr(e.err);
      rows(e, 'softmax', `tokenLogprobsBackward_${t}`, nRows, V);
    },
    rmsNorm(x, w, out, rstd, nRows, n, eps) {
      const t = floatType('rmsNorm', x, w, out);
      expect('rmsNorm', 'rstd', rstd, 'f32');
      need('rmsNorm', 'x', x, nRows * n);
      need('rmsNorm', 'w', w, n);
      need('rmsNorm', 'out', out, nRows * n);
      need('rmsNorm', 'rstd', rstd, nRows);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(out)).ptr(ptrOf(rstd)).i64(nRows).i64(n).f32(eps);
      rows(e, 'norm', `rmsNorm_${t}`, nRows, n);
    },
    rmsNormBackward(x, w, rstd, g, gx, gw, nRows, n) {
      const op = 'rmsNorm.backward';
      const t = floatType(op, x, w, g, gx, gw);
      expect(op, 'rstd', rstd, 'f32');
      for (const [wh, s] of [['x', x], ['g', g], ['gx', gx]] as const) need(op, wh, s, nRows * n);
      need(op, 'w', w, n);
      need(op, 'gw', gw, n);
      need(op, 'rstd', rstd, nRows);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      rows(e, 'norm', `rmsNormBackward_${t}`, nRows, n);
      const { chunks, len } = chunking(nRows, n);
      const partial = scratch(chunks * n * 4);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(partial).i64(nRows).i64(n).i64(len);
      e.launch('norm', `rmsNormCols_${t}`, grid1(n), chunks, 256);
      finishSum(partial, ptrOf(gw), t, n, chunks);
      release(partial);
    },
    layerNorm(x, w, b, out, mean, rstd, nRows, n, eps) {
      const t = floatType('layerNorm', x, w, b, out);
      expect('layerNorm', 'mean', mean, 'f32');
      expect('layerNorm', 'rstd', rstd, 'f32');
      need('layerNorm', 'x', x, nRows * n);
      need('layerNorm', 'out', out, nRows * n);
      need('layerNorm', 'w', w, n);
      need('layerNorm', 'b', b, n);
      need('layerNorm', 'mean', mean, nRows);
      need('layerNorm', 'rstd', rstd, nRows);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(b)).ptr(ptrOf(out)).ptr(ptrOf(mean)).ptr(ptrOf(rstd)).i64(nRows).i64(n).f32(eps);
      rows(e, 'norm', `layerNorm_${t}`, nRows, n);
    },
    layerNormBackward(x, w, mean, rstd, g, gx, gw, gb, nRows, n) {
      const op = 'layerNorm.backward';
      const t = floatType(op, x, w, g, gx, gw, gb);
      expect(op, 'mean', mean, 'f32');
      expect(op, 'rstd', rstd, 'f32');
      for (const [wh, s] of [['x', x], ['g', g], ['gx', gx]] as const) need(op, wh, s, nRows * n);
      for (const [wh, s] of [['w', w], ['gw', gw], ['gb', gb]] as const) need(op, wh, s, n);
      need(op, 'mean', mean, nRows);
      need(op, 'rstd', rstd, nRows);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(mean)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      rows(e, 'norm', `layerNormBackward_${t}`, nRows, n);
      const { chunks, len } = chunking(nRows, n);
      const pw = scratch(chunks * n * 4), pb = scratch(chunks * n * 4);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(mean)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(pw).ptr(pb).i64(nRows).i64(n).i64(len);
      e.launch('norm', `layerNormCols_${t}`, grid1(n), chunks, 256);
      finishSum(pw, ptrOf(gw), t, n, chunks);
      finishSum(pb, ptrOf(gb), t, n, chunks);
      release(pw);
      release(pb);
    },
    rope(x, cos, sin, out, B, H, T, D, cosPerBatch, inverse) {
      const t = floatType('rope', x, cos, sin, out);
      need('rope', 'x', x, B * H * T * D);
      need('rope', 'out', out, B * H * T * D);
      need('rope', 'cos', cos, (cosPerBatch ? B : 1) * T * (D / 2));
      need('rope', 'sin', sin, (cosPerBatch ? B : 1) * T * (D / 2));
      const pairs = B * H * T * (D / 2);
      if (pairs === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(cos)).ptr(ptrOf(sin)).ptr(ptrOf(out)).i64(B).i64(H).i64(T).i64(D).i32(cosPerBatch ? 1 : 0).i32(inverse ? 1 : 0);
      e.launch('rope', `rope_${t}`, grid1(pairs), 1, 256);
    },
    swiglu(gate, up, out, n) {
      const t = floatType('swiglu', gate, up, out);
      for (const [w, s] of [['gate', gate], ['up', up], ['out', out]] as const) need('swiglu', w, s, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(gate)).ptr(ptrOf(up)).ptr(ptrOf(out)).i64(n);
      e.launch('elementwise', `swiglu_${t}`, grid1(n), 1, 256);
    },
    swigluBackward(gate, up, g, ggate, gup, n) {
      const t = floatType('swiglu.backward', gate, up, g, ggate, gup);
      for (const [w, s] of [['gate', gate], ['up', up], ['g', g], ['ggate', ggate], ['gup', gup]] as const) need('swiglu.backward', w, s, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(gate)).ptr(ptrOf(up)).ptr(ptrOf(g)).ptr(ptrOf(ggate)).ptr(ptrOf(gup)).i64(n);
      e.launch('elementwise', `swigluBackward_${t}`, grid1(n), 1, 256);
    },
    attention(q, k, v, mask, out, lse, B, Hq, Hkv, T, S, D, scale, causal, window) {
      const t = checkAttention('attention', q, k, v, mask, B, Hq, Hkv, T, S, D);
      expect('attention', 'lse', lse, 'f32');
      floatType('attention', q, out);
      need('attention', 'out', out, B * Hq * T * D);
      need('attention', 'lse', lse, B * Hq * T);
      if (B * Hq * T === 0) return;
      a.reset().ptr(ptrOf(q)).ptr(ptrOf(k)).ptr(ptrOf(v)).ptr(mask ? ptrOf(mask) : 0).ptr(ptrOf(out)).ptr(ptrOf(lse));
      attnDims(B, Hq, Hkv, T, S, D, scale, causal, window);
      e.launch('attention', `attention_${t}`, Math.ceil(T / ATTN_ROWS), B * Hq, 32 * ATTN_ROWS, attnShared(D, 1, 0));
    },
    attentionBackward(q, k, v, mask, out, lse, g, gq, gk, gv, B, Hq, Hkv, T, S, D, scale, causal, window) {
      const op = 'attention.backward';
      const t = checkAttention(op, q, k, v, mask, B, Hq, Hkv, T, S, D);
      floatType(op, q, out, g, gq, gk, gv);
      expect(op, 'lse', lse, 'f32');
      for (const [w, s] of [['out', out], ['g', g], ['gq', gq]] as const) need(op, w, s, B * Hq * T * D);
      need(op, 'gk', gk, B * Hkv * S * D);
      need(op, 'gv', gv, B * Hkv * S * D);
      need(op, 'lse', lse, B * Hq * T);
      const rowsQ = B * Hq * T;
      const delta = scratch(rowsQ * 4);
      if (rowsQ > 0) {
        a.reset().ptr(ptrOf(out)).ptr(ptrOf(g)).ptr(delta).i64(rowsQ).i64(D);
        e.launch('attention', `attentionBackwardDelta_${t}`, Math.ceil(rowsQ / ATTN_ROWS), 1, 32 * ATTN_ROWS);
        a.reset().ptr(ptrOf(q)).ptr(ptrOf(k)).ptr(ptrOf(v)).ptr(mask ? ptrOf(mask) : 0).ptr(ptrOf(lse)).ptr(ptrOf(g)).ptr(delta).ptr(ptrOf(gq));
        attnDims(B, Hq, Hkv, T, S, D, scale, causal, window);
        e.launch('attention', `attentionBackwardDq_${t}`, Math.ceil(T / ATTN_ROWS), B * Hq, 32 * ATTN_ROWS, attnShared(D, 2, 0));
      }
      if (B * Hkv * S > 0) {
        a.reset().ptr(ptrOf(q)).ptr(ptrOf(k)).ptr(ptrOf(v)).ptr(mask ? ptrOf(mask) : 0).ptr(ptrOf(lse)).ptr(ptrOf(g)).ptr(delta).ptr(ptrOf(gk)).ptr(ptrOf(gv));
        attnDims(B, Hq, Hkv, T, S, D, scale, causal, window);
        e.launch('attention', `attentionBackwardDkv_${t}`, Math.ceil(S / ATTN_ROWS), B * Hkv, 32 * ATTN_ROWS, attnShared(D, 2, 2));
      }
      release(delta);
    },
    adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) {
      for (const [w, s] of [['param', param], ['grad', grad], ['m', m], ['v', v]] as const) {
        expect('adamw', w, s, 'f32');
        need('adamw', w, s, n);
      }
      if (n === 0) return;
      e.deferAdam({
        p: ptrOf(param), g: ptrOf(grad), m: ptrOf(m), v: ptrOf(v), n,
        decay: 1 - lr * weightDecay, stepSize: lr / (1 - Math.pow(beta1, step)), bc2Sqrt: Math.sqrt(1 - Math.pow(beta2, step)),
        beta1, beta2, eps,
      });
    },
    clipGradNorm(grads, sizes, maxNorm, out) {
      if (grads.length !== sizes.length) throw new ShapeError(`clipGradNorm: ${grads.length} gradients but ${sizes.length} sizes`);
      expect('clipGradNorm', 'out', out, 'f32');
      need('clipGradNorm', 'out', out, 1);
      grads.forEach((g, i) => {
        expect('clipGradNorm', `gradient ${i}`, g, 'f32');
        need('clipGradNorm', `gradient ${i}`, g, sizes[i]!);
      });
      const count = Math.max(grads.length, 1);
      const buf = new ArrayBuffer(count * 16);
      const view = new DataView(buf);
      grads.forEach((g, i) => {
        const p = ptrOf(g);
        view.setUint32(16 * i, p % 0x100000000, true);
        view.setUint32(16 * i + 4, Math.floor(p / 0x100000000), true);
        view.setUint32(16 * i + 8, sizes[i]!, true);
      });
      const records = e.upload(buf);
      const partial = scratch(count * CLIP_BLOCKS * 8), coef = scratch(4);
      if (grads.length > 0) {
        a.reset().ptr(records).ptr(partial);
        e.launch('optim', 'clipGradNormPartial', CLIP_BLOCKS, grads.length, 256);
      }
      a.reset().ptr(partial).i64(grads.length * CLIP_BLOCKS).f32(maxNorm).ptr(ptrOf(out)).ptr(coef);
      e.launch('optim', 'clipGradNormFinish', 1, 1, 1024);
      if (grads.length > 0) {
        a.reset().ptr(records).ptr(coef);
        e.launch('optim', 'clipGradNormScale', CLIP_BLOCKS, grads.length, 256);
      }
      release(records);
      release(partial);
      release(coef);
    },
  };
}

