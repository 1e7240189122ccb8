/**
 * generateRollouts: the iteration's rollouts from the current policy, written to the ledger in
 * shards of rollout.shardRows that each commit on their own, so that a crash redoes only the
 * shard it interrupted. Which prompts an iteration takes is a function of (seed, iteration) (the
 * prompt cursor is the iteration), and each row samples with its own seed, so a shard generated
 * again on another worker from the same checkpoint is the same shard. Each shard is generated with
 * continuous batching (models/continuous.ts): rollout.microBatch slots, refilled as rows end.
 */
import { getOnlineRecipe } from '../../algorithms/recipes/index.js';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import { rolloutSeed } from '../../algorithms/rollouts/grid.js';
import { batchIndices } from '../../algorithms/train/batching.js';
import { asCausalLM } from '../../algorithms/recipes/model.js';
import { generateContinuous } from '../../models/continuous.js';
import { committedPart, partPrefix, stageRef, writePart } from '../../store/rollout-ledger.js';
import type { LedgerPart } from '../../store/rollout-ledger.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { heartbeat, keepAlive } from '../heartbeat.js';
import type { ResidentRuns } from '../train.js';
import { bytesOf, GENERATE_FIELDS } from './ledger-records.js';
import type { GeneratedRollout } from './ledger-records.js';
import { checkGeneratingWeights, loopFor, residentKey } from './resident.js';
import { ownsShard } from './split.js';
import type { LoopResident } from './resident.js';
import type { PromptExample } from '../../algorithms/data/prompts.js';
import type { RolloutConfig } from '../../algorithms/recipes/online/config.js';
import type { IterationRequest, StageResult } from './types.js';

export interface PlannedRow {
  row: number;
  prompt: number;
  sample: number;
  seed: number;
}

/** The rows of an iteration: its prompts (the iteration-th block of a seeded shuffle), each sampled n times. */
export function planRows(config: OnlineConfig, iteration: number, promptCount: number, samplesPerPrompt: number): PlannedRow[] {
  const prompts = batchIndices(promptCount, config.rollout.promptsPerIteration, config.seed, iteration);
  return prompts.flatMap((prompt, i) => Array.from({ length: samplesPerPrompt }, (_, sample) => {
    const row = i * samplesPerPrompt + sample;
    return { row, prompt, sample, seed: rolloutSeed(config.seed, iteration, row) };
  }));
}

/**
 * One rollout per planned row, from the resident policy with the rollout settings: continuous
 * batching over rollout.microBatch slots, a row that ends replaced from the queue at once.
 */
export async function sampleRollouts(loop: LoopResident, rows: readonly PlannedRow[], prompts: readonly PromptExample[], r: RolloutConfig): Promise<GeneratedRollout[]> {
  const eos = loop.tok.eosTokenId;
  const out = await generateContinuous(asCausalLM(loop.actor.model), prompts.map((p) => p.ids), {
    batchSize: r.microBatch, maxNewTokens: r.maxNewTokens, temperature: r.temperature, topK: r.topK, topP: r.topP,
    seeds: rows.map((x) => x.seed), eosTokenIds: eos === null ? [] : [eos],
    stopStrings: r.stopStrings, decode: (ids) => loop.tok.decode(ids),
  });
  return rows.map((x, b) => {
    const tokens = out.tokens[b];
    const shown = tokens.at(-1) === eos ? tokens.slice(0, -1) : tokens;
    return {
      ...x, policyStep: loop.iteration, ended: out.ended[b] ? 1 : 0, promptIds: prompts[b].ids, responseIds: tokens,
      samplerLogprobs: out.logprobs[b], record: prompts[b].record, text: bytesOf(loop.tok.decode(shown)),
    };
  });
}

export function generateRollouts(store: RunStorePort, runs: ResidentRuns, req: IterationRequest, writer: string): Promise<StageResult> {
  return keepAlive(async () => {
    const t0 = performance.now();
    runs.touch(residentKey(req));
    heartbeat({ stage: 'generate', phase: 'loading' }, { watch: false });
    const { loop } = await loopFor(store, runs, req);
    const config = req.config as unknown as OnlineConfig;
    const recipe = getOnlineRecipe(req.recipe);
    const r = config.rollout;
    const rows = planRows(config, req.iteration, loop.prompts.count, recipe.samplesPerPrompt(config));
    checkGeneratingWeights(loop, req.runId);
    const parts: LedgerPart[] = [];
    let written = 0;
    for (let s = 0; s * r.shardRows < rows.length; s++) {
      if (!ownsShard(req.split, s)) continue;
      const prefix = partPrefix(req.runId, req.iteration, 'generate', s);
      const done = await committedPart(store.store, prefix);
      if (done) {
        parts.push(done);
        continue;
      }
      const shard = rows.slice(s * r.shardRows, (s + 1) * r.shardRows);
      const prompts = await loop.prompts.getMany(shard.map((x) => x.prompt));
      const records = await sampleRollouts(loop, shard, prompts, r);
      heartbeat({ stage: 'generate', rows: s * r.shardRows + records.length, of: rows.length });
      parts.push(await writePart(store.store, prefix, GENERATE_FIELDS, records, { writtenBy: writer, writtenAt: new Date().toISOString() }));
      written++;
    }
    return { ref: stageRef(req.runId, req.iteration, 'generate', parts), seconds: (performance.now() - t0) / 1000, written };
  }, { hangSeconds: req.config.trainer.hangSeconds });
}
