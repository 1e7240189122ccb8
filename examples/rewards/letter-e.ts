/**
 * A programmatic reward for the online examples: the share of the letter "e" in the response's
 * first word. It is verifiable, cheap, and learnable by the tiny fixture model in a few iterations
 * (rollouts stop at a space, so each response is one word). Signature: algorithms/rollouts/reward.ts.
 */
import type { RewardSample } from '../../algorithms/rollouts/reward.js';

export function reward({ response }: RewardSample): number {
  const word = response.trim().split(/\s+/)[0] ?? '';
  if (word.length === 0) return 0;
  return [...word].filter((c) => c === 'e').length / word.length;
}
