/**
 * Parameters and modules: a small PyTorch-style container that names its parameters in
 * registration order (the Hugging Face state-dict names), plus the basic layers models use.
 */
import type { HostArray } from './backend.js';
import { randn, zeros, ones } from './engine.js';
import type { CreateOptions } from './engine.js';
import { ShapeError, fmtShape } from './errors.js';
import type { Shape } from './errors.js';
import { layerNorm, rmsNorm } from './ops/norm.js';
import { embedding } from './ops/layout.js';
import { linear } from './ops/matmul.js';
import { add } from './ops/elementwise.js';
import type { Generator } from './random.js';
import type { Tensor } from './tensor.js';
import type { TensorParallel } from './distributed/tensor-parallel.js';

/** Mark a tensor as a trainable leaf that outlives every `tidy` scope. */
export function parameter(t: Tensor): Tensor {
  t.requiresGrad = true;
  return t.keep();
}

export abstract class Module {
  private readonly ownParams = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  protected param(name: string, t: Tensor): Tensor {
    this.ownParams.set(name, parameter(t));
    return t;
  }

  /** Also used by wrappers (LoRA, heads) to attach modules after construction. */
  child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** [name, parameter] pairs, depth first in registration order ("layers.0.attn.q_proj.weight"). */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.ownParams) out.push([prefix + n, p]);
    // A child registered under '' contributes its names unprefixed (a wrapper over a whole model).
    for (const [n, c] of this.children) out.push(...c.namedParameters(n === '' ? prefix : `${prefix}${n}.`));
    return out;
  }

  /** [name, module] pairs, this module first (name ''), depth first in registration order. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, c] of this.children) out.push(...c.namedModules(n === '' ? prefix : `${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.numel, 0);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Parameter values by name, copied to the host. */
  stateDict(): Map<string, HostArray> {
    return new Map(this.namedParameters().map(([n, p]) => [n, p.toArraySync()]));
  }

  /** Overwrite parameters in place; the names must match exactly (missing and extra names are listed). */
  loadStateDict(values: ReadonlyMap<string, { shape?: Shape; data: ArrayLike<number> }>): void {
    const named = new Map(this.namedParameters());
    const missing = [...named.keys()].filter((n) => !values.has(n));
    const extra = [...values.keys()].filter((n) => !named.has(n));
    if (missing.length || extra.length) {
      throw new ShapeError(`loadStateDict: missing [${missing.join(', ')}], unexpected [${extra.join(', ')}]`);
    }
    for (const [name, p] of named) {
      const v = values.get(name)!;
      if (v.data.length !== p.numel || (v.shape && v.shape.join() !== p.shape.join())) {
        throw new ShapeError(`loadStateDict: ${name} is ${fmtShape(p.shape)} but the value has ${v.shape ? fmtShape(v.shape) : `${v.data.length} elements`}`);
      }
      p.backend.write(p.storageFor('loadStateDict'), v.data);
    }
  }

  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.dispose();
    }
  }
}

export interface InitOptions extends CreateOptions {
  gen: Generator;
  /** Build the tensor-parallel shard of the model for this rank (kernels/distributed/parallel-layers.ts). */
  tp?: TensorParallel | null;
  /** Build only pipeline stage `stage` of `stages`: its consecutive layers, the embedding on the first, the head on the last. */
  pp?: { stage: number; stages: number } | null;
  /** Standard deviation of the normal init. Default 0.02 (GPT-2 and Llama). */
  std?: number;
  /** 'none' allocates zeros (fast), for weights about to be loaded from a checkpoint. Default 'normal'. */
  init?: 'normal' | 'none';
}

/** A weight initialised N(0, std²) from opts.gen, or zeros when opts.init is 'none'. */
export function initWeight(shape: Shape, opts: InitOptions): Tensor {
  return opts.init === 'none' ? zeros(shape, opts) : randn(shape, opts.gen, { ...opts, std: opts.std ?? 0.02 });
}

/** An extra term added to a layer's output (a LoRA adapter); null when it contributes nothing. */
export type Adapter = (x: Tensor) => Tensor | null;

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** Set by models/lora.ts. */
  adapter: Adapter | null = null;

  constructor(inFeatures: number, outFeatures: number, opts: InitOptions & { bias?: boolean }) {
    super();
    this.weight = this.param('weight', initWeight([outFeatures, inFeatures], opts)); // [out, in]
    this.bias = opts.bias ? this.param('bias', zeros([outFeatures], opts)) : null; // [out]
  }

  forward(x: Tensor): Tensor {
    const y = linear(x, this.weight, this.bias); // [..., out]
    const extra = this.adapter?.(x) ?? null; // [..., out]
    return extra ? add(y, extra) : y;
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(vocab: number, dim: number, opts: InitOptions) {
    super();
    this.weight = this.param('weight', initWeight([vocab, dim], opts)); // [V, C]
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids); // [..., C]
  }
}

export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(dim: number, readonly eps = 1e-6, opts: CreateOptions = {}) {
    super();
    this.weight = this.param('weight', ones([dim], opts)); // [C]
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps); // [..., C]
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(dim: number, readonly eps = 1e-5, opts: CreateOptions = {}) {
    super();
    this.weight = this.param('weight', ones([dim], opts)); // [C]
    this.bias = this.param('bias', zeros([dim], opts)); // [C]
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps); // [..., C]
  }
}
