/** The records each stage writes to the rollout ledger, and their binary layouts (store/record-codec.ts). */
export interface GeneratedRollout {
  row: number;
  /** Index of the prompt in the training split. */
  prompt: number;
  sample: number;
  seed: number;
  /** The iteration whose weights sampled it. */
  policyStep: number;
  /** 1: EOS or a stop string; 0: cut at rollout.maxNewTokens. */
  ended: number;
  promptIds: number[];
  responseIds: number[];
  /** The sampler's log-probs of its tokens (temperature 1, before top-k/top-p). */
  samplerLogprobs: number[];
  /** UTF-8 JSON of the prompt record. */
  record: number[];
  /** UTF-8 of the decoded response. */
  text: number[];
}

export const GENERATE_FIELDS = {
  row: 'i32', prompt: 'i32', sample: 'i32', seed: 'f64', policyStep: 'i32', ended: 'i32',
  promptIds: 'u32[]', responseIds: 'u32[]', samplerLogprobs: 'f32[]', record: 'u8[]', text: 'u8[]',
} as const;

export interface ScoredRecord { row: number; reward: number }
export const SCORE_FIELDS = { row: 'i32', reward: 'f64' } as const;

export interface LogprobRecord { row: number; old: number[]; ref: number[] }
export const LOGPROB_FIELDS = { row: 'i32', old: 'f32[]', ref: 'f32[]' } as const;

export interface ValueRecord { row: number; values: number[] }
export const VALUE_FIELDS = { row: 'i32', values: 'f32[]' } as const;

export interface AdvantageRecord { row: number; advantages: number[]; returns: number[]; trains: number }
export const ADVANTAGE_FIELDS = { row: 'i32', advantages: 'f32[]', returns: 'f32[]', trains: 'i32' } as const;

export const utf8Of = (bytes: readonly number[]): string => Buffer.from(bytes).toString('utf8');
export const bytesOf = (s: string): number[] => [...Buffer.from(s, 'utf8')];
