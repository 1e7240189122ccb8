/**
 * Per-token log-probabilities of given sequences: the one path that policy, old-policy and
 * reference log-probs all come from (PPO, DPO, REINFORCE, SteerLM 2.0).
 */
import { affine, slice, tensor } from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import { IGNORE_INDEX } from '../kernels/ops/softmax.js';
import { targetLogprobs } from './causal-lm.js';
import type { CausalLM } from './causal-lm.js';

export interface SequenceBatch {
  /** Token ids, one row per sequence, right-padded to a common length T. */
  ids: number[][];
  /** 1 where the token at t is scored (a response token), 0 where not (prompt, padding). Same shape as ids. */
  lossMask: number[][];
  /** Pad id used for the padding positions (any valid id). Default 0. */
  padId?: number;
}

/**
 * log π(ids[:, t] | ids[:, < t]) for t = 1 … T−1, as a tensor [B, T−1] with 0 where lossMask is 0
 * (lossMask[:, 0] is ignored: the first token has no context). Differentiable when grad is on.
 * At a temperature τ ≠ 1 these are the log-probs of the tempered distribution softmax(logits/τ),
 * the one a sampler at τ draws from (an importance weight's proposal).
 */
export function logprobs(model: CausalLM, batch: SequenceBatch, temperature = 1): Tensor {
  const [B, T] = checkBatch(batch);
  // Key padding: positions after a row's last real token never matter to the scored ones (causal).
  const logits = model.forward(tensor(batch.ids.flat(), [B, T], { dtype: 'i32' })); // [B, T, V]
  return logprobsFromLogits(model, logits, batch, temperature);
}

/** [B, T] of a batch whose rows all have one length T ≥ 2. */
export function checkBatch(batch: SequenceBatch): [number, number] {
  const B = batch.ids.length, T = batch.ids[0]?.length ?? 0;
  if (T < 2) throw new RangeError(`logprobs: sequences need at least 2 tokens, got ${T}`);
  if (batch.ids.some((r) => r.length !== T) || batch.lossMask.some((r) => r.length !== T)) {
    throw new RangeError(`logprobs: every row of ids and lossMask must have length ${T}`);
  }
  return [B, T];
}

/** `logprobs` from logits already computed (the last pipeline stage's output): [B, T, V] → [B, T−1]. */
export function logprobsFromLogits(model: Pick<CausalLM, 'tensorParallel'>, logits: Tensor, batch: SequenceBatch, temperature = 1): Tensor {
  const [B, T] = checkBatch(batch);
  const targets: number[] = [];
  for (let b = 0; b < B; b++) for (let t = 1; t < T; t++) targets.push(batch.lossMask[b][t] ? batch.ids[b][t] : IGNORE_INDEX);
  const tempered = temperature === 1 ? logits : affine(logits, 1 / temperature, 0); // [B, T, V]
  const shifted = slice(tempered, 1, 0, T - 1); // [B, T−1, V]
  return targetLogprobs(model, shifted, tensor(targets, [B, T - 1], { dtype: 'i32' })); // [B, T−1]
}
