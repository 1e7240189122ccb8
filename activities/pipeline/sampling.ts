/**
 * What the sampling data stages share: reading a prompt file, the prompts of a round and a shard,
 * and sampling N responses per prompt from a resident policy with per-row seeds (the same shard
 * sampled again, on any worker, gives the same responses).
 */
import { readJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { tokenizePrompt } from '../../algorithms/data/prompts.js';
import { rolloutSeed } from '../../algorithms/rollouts/grid.js';
import { shuffled } from '../../algorithms/train/batching.js';
import { generateContinuous } from '../../models/continuous.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import type { ResidentPolicy } from './policies.js';

export async function readRecords(store: RunStorePort, uri: string): Promise<JsonlRecord[]> {
  return readJsonl(await store.fetchInput(uri), uri);
}

/**
 * Round r's prompts: the r-th block of `perRound` of the prompt stream, then this shard's slice of
 * it. The stream is the file in a seeded shuffle, reshuffled at each pass over it (epoch e > 0
 * draws its own order), so rounds that wrap around see the prompts in new company and order.
 */
export function shardIndices(count: number, opts: { seed: number; round: number; perRound: number; perShard: number; shard: number }): number[] {
  const orders = new Map<number, number[]>();
  const epochOrder = (e: number): number[] => {
    if (!orders.has(e)) orders.set(e, shuffled(count, e === 0 ? opts.seed : (opts.seed ^ Math.imul(e, 0x9e3779b1)) >>> 0));
    return orders.get(e)!;
  };
  const at = (p: number): number => epochOrder(Math.floor(p / count))[p % count];
  const round = Array.from({ length: Math.min(opts.perRound, count) }, (_, i) => at((opts.round - 1) * opts.perRound + i));
  return round.slice(opts.shard * opts.perShard, (opts.shard + 1) * opts.perShard);
}

export interface Sampled {
  /** Index into the prompts given. */
  prompt: number;
  text: string;
  ids: number[];
  ended: boolean;
  /** Σ log π(token) under the sampler (temperature 1). */
  logprob: number;
}

export interface SampleOptions {
  samplesPerPrompt: number;
  maxNewTokens: number;
  temperature: number;
  topP?: number;
  stopStrings?: readonly string[];
  seed: number;
  /** Seeds differ per round and shard: (seed, round·1000 + shard, row). */
  round: number;
  shard: number;
  microBatch?: number;
}

/** N samples of each prompt (ids ending where the response starts), in prompt-major order. */
export async function sampleResponses(p: ResidentPolicy, prompts: readonly number[][], o: SampleOptions): Promise<Sampled[]> {
  const rows = prompts.flatMap((ids, prompt) => Array.from({ length: o.samplesPerPrompt }, () => ({ ids, prompt })));
  if (rows.length === 0) return [];
  const eos = p.tok.eosTokenId;
  const out = await generateContinuous(p.model, rows.map((r) => r.ids), {
    batchSize: o.microBatch ?? 16, maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP ?? 1,
    seeds: rows.map((_, i) => rolloutSeed(o.seed, o.round * 1000 + o.shard, i)), eosTokenIds: eos === null ? [] : [eos],
    stopStrings: o.stopStrings ?? [], decode: (ids) => p.tok.decode(ids),
  });
  return rows.map((r, i) => {
    const tokens = out.tokens[i];
    const shown = tokens.at(-1) === eos ? tokens.slice(0, -1) : tokens;
    return { prompt: r.prompt, text: p.tok.decode(shown), ids: tokens, ended: out.ended[i], logprob: out.logprobs[i].reduce((a, b) => a + b, 0) };
  });
}

/** Prompt ids of a record, or null when it is longer than maxPromptLength (skipped, counted). */
export function promptIdsOf(p: ResidentPolicy, rec: JsonlRecord, source: string, maxPromptLength: number): number[] | null {
  return tokenizePrompt(p.tok, rec, source, { maxPromptLength, overlong: 'drop' })?.ids ?? null;
}
