/** AdamW and global gradient-norm clipping: in-place updates on fp32 parameters and state. */
import { ShapeError, fmtShape } from './errors.js';
import { alloc, apply, kernel } from './op.js';
import type { OpSpec } from './op.js';
import { Tensor, noGrad } from './tensor.js';

interface AdamWAttrs { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number }

export const ADAMW: OpSpec<AdamWAttrs> = {
  arity: 4,
  kernels: ['adamw'],
  gradKernels: [],
  dtypes: 'float',
  forward({ backend, inputs: [p, g, m, v], attrs: a }) {
    for (const t of [g, m, v]) {
      if (t.numel !== p.numel) throw new ShapeError(`adamw: parameter ${fmtShape(p.shape)} and state/grad ${fmtShape(t.shape)} differ in size`);
    }
    kernel(backend, 'adamw', 'adamw')(
      p.storageFor('adamw'), g.storageFor('adamw'), m.storageFor('adamw'), v.storageFor('adamw'), p.numel,
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step,
    );
    return p; // updated in place
  },
};

interface ClipAttrs { maxNorm: number }

export const CLIP_GRAD_NORM: OpSpec<ClipAttrs> = {
  arity: 'variadic',
  kernels: ['clipGradNorm'],
  gradKernels: [],
  dtypes: 'float',
  forward({ backend, inputs, attrs }) {
    const norm = alloc(backend, [], inputs[0].dtype); // []
    kernel(backend, 'clipGradNorm', 'clipGradNorm')(
      inputs.map((t) => t.storageFor('clipGradNorm')), inputs.map((t) => t.numel), attrs.maxNorm, norm.storageFor('clipGradNorm'),
    );
    return norm;
  },
};

/**
 * Scale all gradients together so that their global L2 norm is at most maxNorm
 * (Pascanu et al. 2013, Alg. 1). Returns the norm before clipping, as a scalar tensor; no sync.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null && !g.isDisposed);
  if (grads.length === 0) throw new ShapeError('clipGradNorm: no parameter has a gradient; call backward() first');
  return noGrad(() => apply('clipGradNorm', CLIP_GRAD_NORM, grads, { maxNorm }));
}

export interface AdamWConfig {
  /** Learning rate; can be changed per step (schedules). */
  lr: number;
  /** First-moment decay β1. Default 0.9. */
  beta1?: number;
  /** Second-moment decay β2. Default 0.999 (PyTorch's default). */
  beta2?: number;
  /** Denominator epsilon. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 0.01 (PyTorch's default). */
  weightDecay?: number;
}

/** Every AdamW setting, the defaults filled in (PyTorch's). */
export function adamWSettings(config: AdamWConfig): Required<AdamWConfig> {
  return { lr: config.lr, beta1: config.beta1 ?? 0.9, beta2: config.beta2 ?? 0.999, eps: config.eps ?? 1e-8, weightDecay: config.weightDecay ?? 0.01 };
}

export interface AdamWState {
  step: number;
  m: Tensor[];
  v: Tensor[];
}

/** AdamW (Loshchilov & Hutter 2019) with fp32 moments, one fused kernel call per parameter. */
export class AdamW {
  readonly params: readonly Tensor[];
  readonly decay: readonly boolean[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private stepCount = 0;
  // Allocated on first use, so that an AdamW whose role a sharded optimizer took costs nothing.
  private moments: { m: Tensor[]; v: Tensor[] } | null = null;

  /** `noDecay[i]` exempts parameter i from weight decay (norms and biases, by convention). */
  constructor(params: readonly Tensor[], config: AdamWConfig, noDecay: readonly boolean[] = []) {
    this.params = params;
    this.decay = params.map((_, i) => !noDecay[i]);
    ({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay } = adamWSettings(config));
  }

  private get m(): Tensor[] {
    return this.allocated().m;
  }

  private get v(): Tensor[] {
    return this.allocated().v;
  }

  private allocated(): { m: Tensor[]; v: Tensor[] } {
    if (!this.moments) {
      const zeros = (p: Tensor): Tensor => {
        const t = alloc(p.backend, p.shape, p.dtype).keep();
        kernel(p.backend, 'fill', 'AdamW')(t.storageFor('AdamW'), t.numel, 0);
        return t;
      };
      this.moments = { m: this.params.map(zeros), v: this.params.map(zeros) };
    }
    return this.moments;
  }

  get step(): number {
    return this.stepCount;
  }

  /** Apply one update to every parameter that has a gradient. */
  update(): void {
    this.stepCount++;
    noGrad(() => {
      this.params.forEach((p, i) => {
        if (!p.grad) return;
        apply('adamw', ADAMW, [p, p.grad, this.m[i], this.v[i]], {
          lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps,
          weightDecay: this.decay[i] ? this.weightDecay : 0, step: this.stepCount,
        });
      });
    });
  }

  /** Dispose every parameter's gradient (the next backward starts from zero). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The live state, for checkpointing (tensors are owned by the optimizer). */
  state(): AdamWState {
    return { step: this.stepCount, m: this.m, v: this.v };
  }

  /** Replace the state with copies of the given values (same order and sizes as the parameters). */
  loadState(state: { step: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    if (state.m.length !== this.params.length || state.v.length !== this.params.length) {
      throw new ShapeError(`AdamW.loadState: expected ${this.params.length} moment tensors, got ${state.m.length} and ${state.v.length}`);
    }
    this.stepCount = state.step;
    this.params.forEach((p, i) => {
      p.backend.write(this.m[i].storageFor('AdamW.loadState'), state.m[i]);
      p.backend.write(this.v[i].storageFor('AdamW.loadState'), state.v[i]);
    });
  }

  dispose(): void {
    if (this.moments) for (const t of [...this.moments.m, ...this.moments.v]) t.dispose();
    this.moments = null;
  }
}
