/**
 * ZeRO stage 1 (Rajbhandari et al. 2020, "ZeRO", §5.1): AdamW whose moments are sharded over the
 * data-parallel group. The parameters, laid end to end, are cut into `world` equal ranges; rank r
 * keeps m and v for range r only, updates that range of the parameters, and an all-gather puts
 * every range back on every rank. Optimizer memory per rank is 1/world of AdamW's.
 *
 * The gradients it reads are the full, already summed ones (GradBuckets), so global-norm clipping
 * is the same computation as without sharding, and AdamW is element-wise: a sharded step gives
 * the same bits as an unsharded one.
 */
import { ShapeError } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import { ADAMW, adamWSettings } from '../optim.js';
import type { AdamWConfig } from '../optim.js';
import { Tensor, noGrad } from '../tensor.js';
import { copyRange } from './grad-buckets.js';
import type { ProcessGroup } from './process-group.js';

/** The part of parameter `param` that lies in this rank's range: elements [from, from+n). */
interface Piece {
  param: number;
  from: number;
  n: number;
  /** Where the piece sits in this rank's range. */
  at: number;
  p: Tensor; // [n]
  g: Tensor; // [n]
  m: Tensor; // [n]
  v: Tensor; // [n]
}

/** Element ranges of a flat vector of `total` elements cut into `world` equal parts (the last padded). */
export function shardRanges(total: number, world: number): { size: number; ranges: [number, number][] } {
  const size = Math.ceil(total / world);
  return { size, ranges: Array.from({ length: world }, (_, r) => [Math.min(total, r * size), Math.min(total, (r + 1) * size)]) };
}

export class ShardedAdamW {
  readonly params: readonly Tensor[];
  lr: number;
  private readonly settings: Required<AdamWConfig>;
  private readonly decay: readonly boolean[];
  private readonly pieces: Piece[] = [];
  private readonly shard: Tensor; // [size] this rank's range, staged for the all-gather
  private stepCount = 0;

  constructor(private readonly group: ProcessGroup, params: readonly Tensor[], config: AdamWConfig, noDecay: readonly boolean[] = []) {
    this.params = params;
    this.decay = params.map((_, i) => !noDecay[i]);
    this.settings = adamWSettings(config);
    this.lr = config.lr;
    const total = params.reduce((s, p) => s + p.numel, 0);
    const { size, ranges } = shardRanges(total, group.world);
    const [lo, hi] = ranges[group.rank];
    const backend = params[0].backend;
    const buffer = (n: number, fillZero: boolean) => {
      const t = alloc(backend, [n], 'f32').keep(); // [n]
      if (fillZero) kernel(backend, 'fill', 'ShardedAdamW')(t.storageFor('ShardedAdamW'), n, 0);
      return t;
    };
    let start = 0;
    params.forEach((p, i) => {
      if (p.dtype !== 'f32') throw new ShapeError(`ShardedAdamW: parameter #${p.id} is ${p.dtype}; the sharded optimizer keeps f32 parameters`);
      const from = Math.max(lo, start), to = Math.min(hi, start + p.numel);
      if (to > from) {
        const n = to - from;
        this.pieces.push({ param: i, from: from - start, n, at: from - lo, p: buffer(n, false), g: buffer(n, false), m: buffer(n, true), v: buffer(n, true) });
      }
      start += p.numel;
    });
    this.shard = buffer(size, true);
  }

  get step(): number {
    return this.stepCount;
  }

  /** One AdamW step on this rank's range, then every range on every rank. Reads p.grad of every parameter. */
  async update(): Promise<void> {
    this.stepCount++;
    noGrad(() => {
      for (const x of this.pieces) {
        const p = this.params[x.param];
        if (!p.grad) throw new ShapeError(`ShardedAdamW: parameter ${x.param} has no gradient; data parallel gives every parameter one`);
        copyRange(p, x.from, x.p, 0, x.n);
        copyRange(p.grad, x.from, x.g, 0, x.n);
        const { beta1, beta2, eps, weightDecay } = this.settings;
        apply('adamw', ADAMW, [x.p, x.g, x.m, x.v], { lr: this.lr, beta1, beta2, eps, weightDecay: this.decay[x.param] ? weightDecay : 0, step: this.stepCount });
        copyRange(x.p, 0, this.shard, x.at, x.n);
      }
    });
    const all = await this.group.allGather(this.shard); // [world, size]
    noGrad(() => {
      let start = 0;
      for (const p of this.params) {
        copyRange(all, start, p, 0, p.numel); // rank r's range sits at r·size, so the flat layout is contiguous
        start += p.numel;
      }
    });
    all.dispose();
  }

  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * The whole optimizer state on every rank (for a checkpoint, which is the same whatever the
   * layout): this rank's moments gathered with the others', cut back into per-parameter arrays.
   */
  async gatherState(): Promise<{ step: number; m: Float32Array[]; v: Float32Array[] }> {
    const [m, v] = [await this.gatherMoment('m'), await this.gatherMoment('v')];
    return { step: this.stepCount, m, v };
  }

  /** Takes this rank's ranges from a whole state (what gatherState or AdamW.state wrote). */
  loadState(state: { step: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    if (state.m.length !== this.params.length || state.v.length !== this.params.length) {
      throw new ShapeError(`ShardedAdamW.loadState: expected ${this.params.length} moment tensors, got ${state.m.length} and ${state.v.length}`);
    }
    this.stepCount = state.step;
    for (const x of this.pieces) {
      const slice = (a: ArrayLike<number>) => Float32Array.from({ length: x.n }, (_, k) => a[x.from + k]);
      x.m.backend.write(x.m.storageFor('ShardedAdamW.loadState'), slice(state.m[x.param]));
      x.v.backend.write(x.v.storageFor('ShardedAdamW.loadState'), slice(state.v[x.param]));
    }
  }

  dispose(): void {
    for (const x of this.pieces) for (const t of [x.p, x.g, x.m, x.v]) t.dispose();
    this.shard.dispose();
  }

  private async gatherMoment(which: 'm' | 'v'): Promise<Float32Array[]> {
    noGrad(() => {
      for (const x of this.pieces) copyRange(x[which], 0, this.shard, x.at, x.n);
    });
    const all = await this.group.allGather(this.shard); // [world, size]
    const flat = (await all.data()) as Float32Array;
    all.dispose();
    const out: Float32Array[] = [];
    let start = 0;
    for (const p of this.params) {
      out.push(flat.slice(start, start + p.numel));
      start += p.numel;
    }
    return out;
  }
}
