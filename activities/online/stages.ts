/**
 * The stages between generation and training, each idempotent per (run, iteration, stage): if
 * its part is in the ledger, it is returned as it is; else it is computed from the earlier
 * stages' parts and committed. Scoring may run on any worker (the reward model is resident where
 * it runs); log-probs and values run where the actor and critic are; advantages are host
 * arithmetic and run on the control queue.
 */
import path from 'node:path';
import { getOnlineRecipe } from '../../algorithms/recipes/index.js';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import type { ScoredRollout } from '../../algorithms/recipes/types.js';
import { asCausalLM, asClassifier } from '../../algorithms/recipes/model.js';
import { fromGrid, sequenceBatch } from '../../algorithms/rollouts/grid.js';
import { microBatches } from '../../algorithms/train/batching.js';
import { noGrad, reshape, slice, tensor, tidy } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import type { SequenceScoreModel } from '../../models/heads.js';
import { logprobs } from '../../models/logprobs.js';
import { committedPart, partPrefix, readStage, stageRef, writePart } from '../../store/rollout-ledger.js';
import type { StageRef } from '../../store/rollout-ledger.js';
import type { FieldSpec } from '../../store/record-codec.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { heartbeat, keepAlive } from '../heartbeat.js';
import type { ResidentJudges } from '../score.js';
import type { ResidentRuns } from '../train.js';
import {
  ADVANTAGE_FIELDS, LOGPROB_FIELDS, SCORE_FIELDS, utf8Of, VALUE_FIELDS,
} from './ledger-records.js';
import type { AdvantageRecord, GeneratedRollout, LogprobRecord, ScoredRecord, ValueRecord } from './ledger-records.js';
import { loopFor, residentKey } from './resident.js';
import { blockOf } from './split.js';
import { rewardsOf } from './reward.js';
import { criticFor, criticRunId } from './critic.js';
import type { LoopResident } from './resident.js';
import type { IterationRequest, StageName, StageResult } from './types.js';

const cacheOf = (store: RunStorePort) => path.join(store.cacheDir, 'shards');

/** An earlier stage's ref, which the workflow must have passed. */
export function refOf(req: IterationRequest, stage: StageName): StageRef {
  const ref = req.refs[stage];
  if (!ref) throw Object.assign(new Error(`run ${req.runId} iteration ${req.iteration}: the ${stage} stage has not run yet`), { name: 'CheckpointError' });
  return ref;
}

export const readRollouts = (store: RunStorePort, req: IterationRequest) => readStage<GeneratedRollout>(store.store, refOf(req, 'generate'), cacheOf(store));
export const readRecords = <T>(store: RunStorePort, req: IterationRequest, stage: StageName) => readStage<T>(store.store, refOf(req, stage), cacheOf(store));

/**
 * The stage's part: the committed one, or `compute`'s records committed now. One part per stage,
 * or, under req.split, this call's part of the stage (none when its block of rows is empty).
 */
async function singlePart<T>(store: RunStorePort, req: IterationRequest, stage: StageName, fields: FieldSpec, writer: string, compute: () => Promise<T[]>): Promise<StageResult> {
  const t0 = performance.now();
  const prefix = partPrefix(req.runId, req.iteration, stage, req.split?.index ?? 0);
  const done = await committedPart(store.store, prefix);
  const records = done ? null : await compute();
  if (records && records.length === 0 && req.split) return { ref: stageRef(req.runId, req.iteration, stage, []), seconds: (performance.now() - t0) / 1000, written: 0 };
  const part = done ?? await writePart(store.store, prefix, fields, records!, { writtenBy: writer, writtenAt: new Date().toISOString() });
  return { ref: stageRef(req.runId, req.iteration, stage, [part]), seconds: (performance.now() - t0) / 1000, written: done ? 0 : 1 };
}

/** This call's rows of the iteration's rollouts: all, or its block of whole micro-batches under req.split. */
async function rowsOf(store: RunStorePort, req: IterationRequest, microBatch: number): Promise<GeneratedRollout[]> {
  const rows = await readRollouts(store, req);
  const { start, end } = blockOf(rows.length, microBatch, req.split);
  return rows.slice(start, end);
}

export function scoreRollouts(store: RunStorePort, judges: ResidentJudges, req: IterationRequest, writer: string): Promise<StageResult> {
  return keepAlive(() => singlePart<ScoredRecord>(store, req, 'score', SCORE_FIELDS, writer, async () => {
    const rows = await rowsOf(store, req, (req.config as unknown as OnlineConfig).rollout.microBatch);
    const rewards = await rewardsOf(store, judges, req.config as unknown as OnlineConfig, rows.map((r) => ({
      record: JSON.parse(utf8Of(r.record)) as Record<string, unknown>, response: utf8Of(r.text), ended: r.ended === 1,
    })), (done) => heartbeat({ stage: 'score', rows: done, of: rows.length }));
    return rows.map((r, i) => ({ row: r.row, reward: rewards[i] }));
  }), { hangSeconds: req.config.trainer.hangSeconds });
}

/** Per-token log-probs of the rollouts' responses under `model` (inside `wrap`: LoRA's adapters-off reference). */
async function responseLogprobs(loop: LoopResident, rows: readonly GeneratedRollout[], microBatch: number, which: 'actor' | 'reference', stage: string): Promise<number[][]> {
  const out: number[][] = [];
  const actor = asCausalLM(loop.actor.model);
  for (const micro of microBatches(rows, microBatch)) {
    const sb = sequenceBatch(micro);
    const forward = () => noGrad(() => logprobs(which === 'reference' && loop.reference ? loop.reference : actor, sb)); // [m, T−1]
    const lp = tidy(() => (which === 'reference' && !loop.reference && loop.actor.lora ? loop.actor.lora.asBase(forward) : forward()));
    const v = await lp.data();
    lp.dispose();
    out.push(...fromGrid(micro, sb.T, v));
    heartbeat({ stage, rows: out.length, of: rows.length });
  }
  return out;
}

/** Most the recomputed log-prob of a sampled token may differ from the sampler's before the stage fails (fp32: about 1e-5). */
const SAMPLER_TOLERANCE = 0.1;

export function computeLogprobs(store: RunStorePort, runs: ResidentRuns, req: IterationRequest, writer: string): Promise<StageResult> {
  return keepAlive(async () => {
    let drift = 0;
    const r = await singlePart<LogprobRecord>(store, req, 'logprobs', LOGPROB_FIELDS, writer, async () => {
      runs.touch(residentKey(req));
      const { loop } = await loopFor(store, runs, req);
      const mb = req.config.trainer.microBatchSize;
      const rows = await rowsOf(store, req, mb);
      const old = await responseLogprobs(loop, rows, mb, 'actor', 'logprobs');
      // Log-prob parity: the policy being trained must assign the sampled tokens the log-probs the
      // sampler gave them, or the rollouts did not come from the trained weights.
      rows.forEach((row, i) => row.samplerLogprobs.forEach((s, t) => (drift = Math.max(drift, Math.abs(s - old[i][t])))));
      if (drift > SAMPLER_TOLERANCE) {
        throw Object.assign(new Error(`run ${req.runId} iteration ${req.iteration}: the policy's log-probs of the sampled tokens differ from the sampler's by up to ${drift.toFixed(4)} nats; the rollouts were not generated by the weights being trained`), { name: 'CheckpointError' });
      }
      const hasRef = Boolean(loop.recipe.roles.reference);
      const ref = hasRef ? await responseLogprobs(loop, rows, mb, 'reference', 'logprobs (reference)') : old.map(() => []);
      return rows.map((row, i) => ({ row: row.row, old: old[i], ref: ref[i] }));
    });
    return r.written ? { ...r, metrics: { samplerDrift: drift } } : r;
  }, { hangSeconds: req.config.trainer.hangSeconds });
}

/** Per-position values of a critic (a one-label classifier read at every position): ids [B, T] → [B, T]. */
export function criticValues(critic: SequenceScoreModel, ids: Tensor): Tensor {
  const [B, T] = ids.shape;
  return reshape(critic.score.forward(critic.backbone.hidden(ids)), [B, T]); // [B, T, 1] → [B, T]
}

/** The critic's values on the grid [m, T−1]: column c is V at position c, which predicts token c+1. */
export function valueGrid(critic: SequenceScoreModel, ids: number[][], T: number): Tensor {
  const v = criticValues(critic, tensor(ids.flat(), [ids.length, T], { dtype: 'i32' })); // [m, T]
  return slice(v, 1, 0, T - 1); // [m, T−1]
}

export function computeValues(store: RunStorePort, runs: ResidentRuns, req: IterationRequest, writer: string): Promise<StageResult> {
  return keepAlive(() => singlePart<ValueRecord>(store, req, 'values', VALUE_FIELDS, writer, async () => {
    // The critic lives with the actor, or on a worker of its own (req.critic; this is that worker).
    const state = req.critic ? (await criticFor(store, runs, req)).cr.critic : (await loopFor(store, runs, req)).loop.critic;
    runs.touch(req.critic ? criticRunId(req.runId) : req.runId);
    if (!state) throw Object.assign(new Error(`recipe ${req.recipe} has no critic`), { name: 'ConfigError' });
    const critic = asClassifier(state.model);
    const rows = await readRollouts(store, req);
    const out: ValueRecord[] = [];
    for (const micro of microBatches(rows, req.config.trainer.microBatchSize)) {
      const sb = sequenceBatch(micro);
      const v = tidy(() => noGrad(() => valueGrid(critic, sb.ids, sb.T))); // [m, T−1]
      const values = fromGrid(micro, sb.T, await v.data());
      v.dispose();
      micro.forEach((r, b) => out.push({ row: r.row, values: values[b] }));
      heartbeat({ stage: 'values', rows: out.length, of: rows.length });
    }
    return out;
  }), { hangSeconds: req.config.trainer.hangSeconds });
}

/** The scored rollouts of an iteration as the recipe's advantage function sees them. */
export async function scoredRollouts(store: RunStorePort, req: IterationRequest): Promise<{ rows: GeneratedRollout[]; scored: ScoredRollout[] }> {
  const rows = await readRollouts(store, req);
  const scores = await readRecords<ScoredRecord>(store, req, 'score');
  const lps = req.refs.logprobs ? await readRecords<LogprobRecord>(store, req, 'logprobs') : null;
  const vals = req.refs.values ? await readRecords<ValueRecord>(store, req, 'values') : null;
  const scored = rows.map((r, i): ScoredRollout => ({
    prompt: r.prompt, ended: r.ended === 1, length: r.responseIds.length, reward: scores[i].reward,
    old: lps ? lps[i].old : null, ref: lps && lps[i].ref.length ? lps[i].ref : null, values: vals ? vals[i].values : null,
  }));
  return { rows, scored };
}

export function computeAdvantages(store: RunStorePort, req: IterationRequest, writer: string): Promise<StageResult> {
  return keepAlive(async () => {
    const recipe = getOnlineRecipe(req.recipe);
    const config = req.config as unknown as OnlineConfig;
    // Metrics and the next loop state are recomputed even when the part exists (pure and cheap), so a retried stage returns them too.
    const { rows, scored } = await scoredRollouts(store, req);
    const out = recipe.advantages(scored, config, req.state ?? recipe.initialState(config));
    const result = await singlePart<AdvantageRecord>(store, req, 'advantages', ADVANTAGE_FIELDS, writer, async () => rows.map((r, i) => {
      const a = out.rows[i];
      if (a.advantages.some((x) => !Number.isFinite(x))) {
        throw Object.assign(new Error(`iteration ${req.iteration}: a non-finite advantage for rollout ${r.row} (reward ${scored[i].reward}); check the reward's scale`), { name: 'NonFiniteLossError' });
      }
      return { row: r.row, advantages: a.advantages, returns: a.returns ?? [], trains: a.trains ? 1 : 0 };
    }));
    const h = recipe.headline(config);
    return { ...result, metrics: out.metrics, state: out.state, headline: { ...h, value: out.metrics[h.metric] } };
  }, { hangSeconds: req.config.trainer.hangSeconds });
}
