/**
 * LoRA (Hu et al. 2021, eq. 3): h = W₀x + (α/r)·B·A·dropout(x), with A [r, in] initialised
 * Kaiming-uniform and B [out, r] zero, so a fresh adapter changes nothing. Names follow PEFT
 * (`…q_proj.lora_A.weight`). With the adapters disabled the model is the base model again, which
 * serves as the reference policy without a second copy of the weights.
 */
import { Linear, Module, mul, mulScalar, noGrad, tensor } from '../kernels/index.js';
import type { Generator, Tensor } from '../kernels/index.js';
import { AlignerError } from '../kernels/errors.js';

export interface LoraConfig {
  /** Rank r. Default 8. */
  rank?: number;
  /** Scale numerator α; the update is scaled by α / r. Default 16. */
  alpha?: number;
  /** Dropout on the adapter's input during training. Default 0. */
  dropout?: number;
  /** Names of the linears to adapt (last path component), e.g. ['q_proj', 'v_proj']. */
  targetModules: readonly string[];
}

class LoraAdapter extends Module {
  readonly A: Linear;
  readonly B: Linear;
  enabled = true;
  training = true;

  constructor(base: Linear, readonly scale: number, readonly dropout: number, readonly gen: Generator, rank: number) {
    super();
    const [outF, inF] = base.weight.shape;
    const opts = { backend: base.weight.backend, gen };
    this.A = base.child('lora_A', new Linear(inF, rank, opts));
    this.B = base.child('lora_B', new Linear(rank, outF, opts));
    // Kaiming-uniform for A (bound 1/√in, as PEFT's default), zeros for B.
    const bound = 1 / Math.sqrt(inF);
    base.weight.backend.write(this.A.weight.storageFor('lora'), Array.from({ length: rank * inF }, () => (2 * gen.uniform() - 1) * bound));
    base.weight.backend.write(this.B.weight.storageFor('lora'), new Float32Array(outF * rank));
  }

  apply(x: Tensor): Tensor | null {
    if (!this.enabled) return null;
    let input = x;
    if (this.training && this.dropout > 0) {
      const keep = 1 - this.dropout;
      const maskValues = Array.from({ length: x.numel }, () => (this.gen.uniform() < keep ? 1 / keep : 0));
      input = mul(x, tensor(maskValues, x.shape, { backend: x.backend }));
    }
    return mulScalar(this.B.forward(this.A.forward(input)), this.scale); // [..., out]
  }
}

/** Handles on the adapters added to a model. */
export class LoraHandle {
  constructor(readonly adapters: readonly { name: string; adapter: LoraAdapter }[]) {}

  /** Adapter parameters only (what the optimizer should train). */
  parameters(): Tensor[] {
    return this.adapters.flatMap(({ adapter }) => [adapter.A.weight, adapter.B.weight]);
  }

  setEnabled(enabled: boolean): void {
    for (const { adapter } of this.adapters) adapter.enabled = enabled;
  }

  setTraining(training: boolean): void {
    for (const { adapter } of this.adapters) adapter.training = training;
  }

  /** Run fn as the base model (adapters off, no gradient): the reference policy. */
  asBase<T>(fn: () => T): T {
    this.setEnabled(false);
    try {
      return noGrad(fn);
    } finally {
      this.setEnabled(true);
    }
  }
}

/**
 * Add adapters to every Linear whose name ends with one of `targetModules`, and freeze all other
 * parameters of the model (they keep their values and get no gradient).
 */
export function applyLora(model: Module, config: LoraConfig, gen: Generator): LoraHandle {
  const rank = config.rank ?? 8, alpha = config.alpha ?? 16, dropout = config.dropout ?? 0;
  if (!Number.isInteger(rank) || rank <= 0) throw new AlignerError(`applyLora: rank must be a positive integer, got ${rank}`);
  if (!(dropout >= 0 && dropout < 1)) throw new AlignerError(`applyLora: dropout must be in [0, 1), got ${dropout}`);
  const targets = model.namedModules().filter(
    ([name, m]) => m instanceof Linear && config.targetModules.some((t) => name === t || name.endsWith(`.${t}`)),
  ) as [string, Linear][];
  if (targets.length === 0) {
    throw new AlignerError(`applyLora: no Linear matches targetModules [${config.targetModules.join(', ')}]`);
  }
  for (const p of model.parameters()) p.requiresGrad = false;
  const adapters = targets.map(([name, linear]) => {
    const adapter = new LoraAdapter(linear, alpha / rank, dropout, gen, rank);
    linear.adapter = (x) => adapter.apply(x);
    return { name, adapter };
  });
  return new LoraHandle(adapters);
}
