/**
 * The reference backend: plain TypeScript loops over typed arrays. It is the living definition
 * of every kernel, runs anywhere, and supports f64 for gradient checks. It is slow on purpose:
 * clarity over speed.
 */
import type { Backend, HostArray, Kernels, Storage } from '../backend.js';
import type { DType } from '../dtype.js';
import { adamw } from './adamw.js';
import { attention, attentionBackward } from './attention.js';
import { binary } from './binary.js';
import { clipGradNorm } from './clip-grad-norm.js';
import { copyBlock } from './copy-block.js';
import { embedding, embeddingBackward } from './embedding.js';
import { cast, copy, fill } from './fill.js';
import { affine, powScalar } from './affine.js';
import { layerNorm, layerNormBackward } from './layer-norm.js';
import { matmul } from './matmul.js';
import { permute } from './permute.js';
import { reduceMax, reduceMaxBackward, reduceSum } from './reduce.js';
import { rmsNorm, rmsNormBackward } from './rms-norm.js';
import { rope } from './rope.js';
import { logSoftmax, logSoftmaxBackward, softmax, softmaxBackward } from './softmax.js';
import { makeArray, store } from './storage.js';
import type { RefStorage } from './storage.js';
import { swiglu, swigluBackward } from './swiglu.js';
import { tokenLogprobs, tokenLogprobsBackward } from './token-logprobs.js';
import { unary, unaryBackward } from './unary.js';

export const referenceKernels: Kernels = {
  fill, copy, cast, unary, unaryBackward, affine, powScalar, binary,
  reduceSum, reduceMax, reduceMaxBackward, matmul, permute, copyBlock,
  embedding, embeddingBackward, softmax, softmaxBackward, logSoftmax, logSoftmaxBackward,
  tokenLogprobs, tokenLogprobsBackward, rmsNorm, rmsNormBackward, layerNorm, layerNormBackward,
  rope, swiglu, swigluBackward, attention, attentionBackward, adamw, clipGradNorm,
};

let live = 0;
let liveBytes = 0;

function copyOut(s: Storage): HostArray {
  const data = (s as RefStorage).data;
  return data.slice(0, s.numel);
}

export const referenceBackend: Backend = {
  name: 'reference',
  device: 'cpu',
  dtypes: new Set<DType>(['f64', 'f32', 'bf16', 'i32']),
  alloc(dtype: DType, numel: number): Storage {
    const data = makeArray(dtype, numel);
    live++;
    liveBytes += data.byteLength;
    return { dtype, numel, data } as RefStorage;
  },
  free(s: Storage): void {
    live--;
    liveBytes -= (s as RefStorage).data.byteLength;
  },
  write(s: Storage, data: ArrayLike<number>): void {
    for (let i = 0; i < s.numel; i++) store(s, i, data[i]!);
  },
  readSync: copyOut,
  read: (s: Storage) => Promise.resolve(copyOut(s)),
  kernels: referenceKernels,
  unsupported: {},
  stats: () => ({ liveBuffers: live, liveBytes }),
  synchronize: () => undefined,
};
