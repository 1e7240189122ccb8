/**
 * Megatron-style tensor parallel (Shoeybi et al. 2019, "Megatron-LM", §3): the conjugate pair of
 * communication ops and the vocab-parallel embedding and log-probs built on them.
 *
 * - `copyIn` (Megatron's f): identity forward, all-reduce of the gradient backward. It sits in
 *   front of a column-parallel linear, whose input every rank holds whole.
 * - `reduceOut` (g): all-reduce forward, identity backward. It closes a row-parallel linear.
 *
 * The collectives are queued on the stream like any kernel, so a forward still builds without
 * awaiting; their Promises are tracked here and `settle()` (once per step) surfaces the first
 * failure, such as a rank that stopped answering.
 */
import { ShapeError } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import { embedding } from '../ops/layout.js';
import { exp, log, mul, sub } from '../ops/elementwise.js';
import { max, reshape, sum } from '../ops/reduce-and-reshape.js';
import { IGNORE_INDEX } from '../ops/softmax.js';
import { hostInts, tensor } from '../engine.js';
import { Tensor, noGrad } from '../tensor.js';
import type { ProcessGroup, ReduceOp } from './process-group.js';

/** Element range [from, to) of an axis of length n that rank r holds: ceil(n / world) each, the last ones short. */
export function shardRange(n: number, rank: number, world: number): [number, number] {
  const part = Math.ceil(n / world);
  return [Math.min(n, rank * part), Math.min(n, (rank + 1) * part)];
}

export class TensorParallel {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(readonly group: ProcessGroup) {}

  get rank(): number {
    return this.group.rank;
  }

  get world(): number {
    return this.group.world;
  }

  /** f: the input of a column-parallel layer; its gradient is summed over the group. */
  copyIn(x: Tensor): Tensor {
    return apply('tp.copyIn', this.copyInSpec, [x], {});
  }

  /** g: the sum over the group of the partial outputs of a row-parallel layer. */
  reduceOut(x: Tensor): Tensor {
    return apply('tp.reduceOut', this.reduceOutSpec, [x], {});
  }

  /** The element-wise max over the group, outside the tape. */
  maxOut(x: Tensor): Tensor {
    return noGrad(() => this.reduced(x, 'max'));
  }

  /** Waits for every collective queued so far; throws the first one's failure. */
  async settle(): Promise<void> {
    await Promise.all([...this.inFlight]);
    const failure = this.failure;
    this.failure = null;
    if (failure) throw failure;
  }

  /** A copy of x summed (or maxed) over the group, queued behind the kernels that produce x. */
  private reduced(x: Tensor, op: ReduceOp): Tensor {
    const out = alloc(x.backend, x.shape, x.dtype); // [...x.shape]
    kernel(x.backend, 'copy', 'tensor parallel')(x.storageFor('tensor parallel'), out.storageFor('tensor parallel'), x.numel);
    this.track(this.group.allReduce(out, op));
    return out;
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((e: unknown) => {
      this.failure ??= e;
    });
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  private readonly copyInSpec: OpSpec = {
    arity: 1,
    kernels: [],
    gradKernels: ['copy'],
    dtypes: 'float',
    forward: ({ inputs: [x] }) => new Tensor(x.shape, x.dtype, x.backend, x), // a view: identity
    backward: (g) => [this.reduced(g, 'sum')],
  };

  private readonly reduceOutSpec: OpSpec = {
    arity: 1,
    kernels: ['copy'],
    gradKernels: [],
    dtypes: 'float',
    forward: ({ inputs: [x] }) => this.reduced(x, 'sum'),
    backward: (g) => [g],
  };
}

/**
 * Rows [from, to) of a [V, C] embedding on each rank: ids outside this rank's rows look up zeros,
 * and the sum over the group is every id's row.
 */
export function vocabParallelEmbedding(tp: TensorParallel, weight: Tensor, ids: Tensor, from: number): Tensor {
  const rows = weight.shape[0];
  const host = hostInts(ids);
  const local = new Array<number>(host.length), keep = new Array<number>(host.length);
  for (let i = 0; i < host.length; i++) {
    const j = host[i] - from;
    const mine = j >= 0 && j < rows;
    local[i] = mine ? j : 0;
    keep[i] = mine ? 1 : 0;
  }
  const looked = embedding(weight, tensor(local, ids.shape, { dtype: 'i32', backend: weight.backend })); // [..., C]
  const mask = tensor(keep, [...ids.shape, 1], { backend: weight.backend }); // [..., 1]
  return tp.reduceOut(mul(looked, mask)); // [..., C]
}

/**
 * log softmax(logits)[target] with the vocabulary split over the group (Megatron's
 * vocab-parallel cross-entropy): logits [..., Vr] hold this rank's columns [from, from + Vr).
 * Three all-reduces: the max of the logits (outside the tape: log-sum-exp does not depend on
 * it), the sum of exp, and the target's logit. 0 where the target is ignoreIndex, like
 * tokenLogprobs. Returns [...targets.shape].
 */
export function vocabParallelTokenLogprobs(tp: TensorParallel, logits: Tensor, targets: Tensor, from: number, ignoreIndex = IGNORE_INDEX): Tensor {
  const Vr = logits.shape[logits.rank - 1];
  const N = targets.numel;
  if (logits.numel !== N * Vr) throw new ShapeError(`vocabParallelTokenLogprobs: logits ${logits.shape} do not match targets ${targets.shape}`);
  const host = hostInts(targets);
  const flat = new Array<number>(N), picked = new Array<number>(N), valid = new Array<number>(N);
  for (let n = 0; n < N; n++) {
    const j = host[n] - from;
    const mine = host[n] !== ignoreIndex && j >= 0 && j < Vr;
    flat[n] = n * Vr + (mine ? j : 0);
    picked[n] = mine ? 1 : 0;
    valid[n] = host[n] === ignoreIndex ? 0 : 1;
  }
  const opts = { backend: logits.backend };
  const z = reshape(logits, [N, Vr]); // [N, Vr]
  const m = tp.maxOut(noGrad(() => max(z, 1, true))); // [N, 1] the global max
  const shifted = sub(z, m); // [N, Vr]
  const sumExp = tp.reduceOut(sum(exp(shifted), 1, true)); // [N, 1] over the whole vocabulary
  const mine = mul(embedding(reshape(shifted, [N * Vr, 1]), tensor(flat, [N], { ...opts, dtype: 'i32' })), tensor(picked, [N, 1], opts)); // [N, 1]
  const target = tp.reduceOut(mine); // [N, 1] the target's shifted logit, from the rank that holds it
  const lp = mul(sub(target, log(sumExp)), tensor(valid, [N, 1], opts)); // [N, 1]
  return reshape(lp, targets.shape); // [...targets]
}
