/**
 * Supervised fine-tuning loss: the mean negative log-likelihood of the trained tokens
 * (Ouyang et al. 2022, §3.5; NeMo-Aligner's masked NLL). Token log-probs come from
 * models/logprobs.ts, with 0 on the tokens the loss mask excludes.
 */
import { mulScalar, neg, sum } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';

/** logprobs [B, T−1] (0 where masked) and the number of trained tokens → scalar loss []. */
export function sftLoss(tokenLogprobs: Tensor, trainedTokens: number): Tensor {
  return mulScalar(neg(sum(tokenLogprobs)), 1 / Math.max(1, trainedTokens)); // []
}
