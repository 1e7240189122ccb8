/** One language-model training step (forward, backward, clipping, AdamW), freeing everything but the loss. */
import { clipGradNorm, tidy } from '../kernels/index.js';
import type { AdamW, Tensor } from '../kernels/index.js';
import type { LlamaForCausalLM } from './llama.js';

export interface StepOptions {
  /** Global gradient-norm clip. Default 1.0. */
  maxGradNorm?: number;
  /** Number of non-ignored targets, when known (saves reading the targets back). */
  count?: number;
}

/** Returns the scalar loss tensor, which the caller reads (`await loss.item()`) and disposes. */
export function lmTrainStep(model: LlamaForCausalLM, opt: AdamW, ids: Tensor, targets: Tensor, opts: StepOptions = {}): Tensor {
  return tidy(() => {
    const loss = model.loss(ids, targets, opts.count); // []
    loss.backward();
    clipGradNorm(opt.params, opts.maxGradNorm ?? 1.0);
    opt.update();
    opt.zeroGrad();
    return loss;
  });
}
