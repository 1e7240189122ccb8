/**
 * Programmatic rewards: a module that exports a function scoring one rollout, for verifiable tasks
 * (the answer matches a number, the output parses) where no reward model is needed. Named in a
 * config as `reward.function: path/to/module.ts` (export `reward` or default) or `…#exportName`.
 *
 *   export function reward({ prompt, response, record, ended }: RewardSample): number {
 *     return response.trim() === String(record.answer) ? 1 : 0;
 *   }
 */
export interface RewardSample {
  /** The prompt as text (a chat prompt: its last user turn). */
  prompt: string;
  /** The decoded response, without the end-of-sequence token. */
  response: string;
  /** The whole prompt record, as in the data file (extra keys such as an expected answer included). */
  record: Record<string, unknown>;
  /** Whether the response ended (EOS or a stop string) rather than being cut at rollout.maxNewTokens. */
  ended: boolean;
}

export type RewardFunction = (sample: RewardSample) => number | Promise<number>;

/** "path#name" → its parts; the name defaults to `reward`, then the default export. */
export function parseRewardSpec(spec: string): { path: string; name: string | null } {
  const hash = spec.lastIndexOf('#');
  return hash > 0 ? { path: spec.slice(0, hash), name: spec.slice(hash + 1) } : { path: spec, name: null };
}
