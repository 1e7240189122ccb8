/** Softmax, log-softmax, and the fused token log-prob / cross-entropy over the vocabulary. */
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import type { Tensor } from '../tensor.js';
import { mulScalar, neg } from './elementwise.js';
import { sum } from './reduce-and-reshape.js';

function rowsOf(x: Tensor): { rows: number; n: number } {
  const n = x.shape[x.rank - 1] ?? 1;
  return { rows: n === 0 ? 0 : x.numel / n, n };
}

function rowwise(name: 'softmax' | 'logSoftmax', backwardName: 'softmaxBackward' | 'logSoftmaxBackward'): OpSpec {
  return {
    arity: 1,
    kernels: [name],
    gradKernels: [backwardName],
    dtypes: 'float',
    forward({ backend, inputs: [x] }) {
      const { rows, n } = rowsOf(x);
      const out = alloc(backend, x.shape, x.dtype); // [..., n]
      kernel(backend, name, name)(x.storageFor(name), out.storageFor(name), rows, n);
      return out;
    },
    backward(g, { backend, inputs: [x], output }) {
      const { rows, n } = rowsOf(x);
      const gx = alloc(backend, x.shape, x.dtype); // [..., n]
      const op = `${name}.backward`;
      kernel(backend, backwardName, op)(output!.storageFor(op), g.storageFor(op), gx.storageFor(op), rows, n);
      return [gx];
    },
  };
}

export const SOFTMAX = rowwise('softmax', 'softmaxBackward');
export const LOG_SOFTMAX = rowwise('logSoftmax', 'logSoftmaxBackward');

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  if (x.rank === 0) throw new ShapeError('softmax: needs at least one axis');
  return apply('softmax', SOFTMAX, [x], {});
}

/** Log-softmax over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  if (x.rank === 0) throw new ShapeError('logSoftmax: needs at least one axis');
  return apply('logSoftmax', LOG_SOFTMAX, [x], {});
}

interface TokenAttrs { ignoreIndex: number }

export const TOKEN_LOGPROBS: OpSpec<TokenAttrs> = {
  arity: 2,
  kernels: ['tokenLogprobs'],
  gradKernels: ['tokenLogprobsBackward'],
  dtypes: 'float',
  intInputs: [1],
  forward(ctx) {
    const { backend, inputs: [logits, targets], attrs } = ctx;
    const { rows, n: V } = rowsOf(logits);
    const out = alloc(backend, targets.shape, logits.dtype); // [...targets]
    const lse = alloc(backend, targets.shape, logits.dtype); // [...targets], saved for backward
    kernel(backend, 'tokenLogprobs', 'tokenLogprobs')(
      logits.storageFor('tokenLogprobs'), targets.storageFor('tokenLogprobs'), out.storageFor('tokenLogprobs'),
      lse.storageFor('tokenLogprobs'), rows, V, attrs.ignoreIndex,
    );
    ctx.saved.push(lse);
    return out;
  },
  backward(g, { backend, inputs: [logits, targets], saved: [lse], attrs }) {
    const { rows, n: V } = rowsOf(logits);
    const gx = alloc(backend, logits.shape, logits.dtype); // [..., V]
    const op = 'tokenLogprobs.backward';
    kernel(backend, 'tokenLogprobsBackward', op)(
      logits.storageFor(op), targets.storageFor(op), lse.storageFor(op), g.storageFor(op), gx.storageFor(op), rows, V, attrs.ignoreIndex,
    );
    return [gx, null];
  },
};

export const IGNORE_INDEX = -100;

/**
 * log p(target) for each position: logits [..., V], targets i32 [...] → [...].
 * Positions whose target is ignoreIndex (−100, as PyTorch) give 0 and no gradient.
 */
export function tokenLogprobs(logits: Tensor, targets: Tensor, ignoreIndex = IGNORE_INDEX): Tensor {
  if (targets.dtype !== 'i32') throw new DTypeError(`tokenLogprobs: targets must be i32, got ${targets.dtype}`);
  const lead = logits.shape.slice(0, -1);
  if (logits.rank < 1 || lead.length !== targets.rank || lead.some((d, i) => d !== targets.shape[i])) {
    throw new ShapeError(`tokenLogprobs: logits ${fmtShape(logits.shape)} do not match targets ${fmtShape(targets.shape)} (expected logits [...targets, V])`);
  }
  return apply('tokenLogprobs', TOKEN_LOGPROBS, [logits, targets], { ignoreIndex });
}

/**
 * Mean negative log-likelihood over the positions whose target is not ignoreIndex.
 * `count` is that number of positions; when omitted it is read from the targets (a sync point).
 * Returns the scalar loss and the per-token log-probs (which RL recipes reuse).
 */
export function crossEntropy(
  logits: Tensor, targets: Tensor, opts: { ignoreIndex?: number; count?: number } = {},
): { loss: Tensor; logprobs: Tensor } {
  const ignoreIndex = opts.ignoreIndex ?? IGNORE_INDEX;
  const logprobs = tokenLogprobs(logits, targets, ignoreIndex); // [...targets]
  const count = opts.count ?? countValid(targets, ignoreIndex);
  const loss = mulScalar(neg(sum(logprobs)), 1 / Math.max(count, 1)); // []
  return { loss, logprobs };
}

function countValid(targets: Tensor, ignoreIndex: number): number {
  let c = 0;
  for (const t of targets.toArraySync()) if (t !== ignoreIndex) c++;
  return c;
}
