/** The benchmark's programmatic reward: the share of response words with an even id (any cheap, verifiable function would do). */
import type { RewardSample } from '../algorithms/rollouts/reward.js';

export function reward({ response }: RewardSample): number {
  const words = response.split(/\s+/).filter(Boolean);
  return words.filter((w) => Number(w.slice(1)) % 2 === 0).length / Math.max(1, words.length);
}
