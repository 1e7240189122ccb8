/**
 * Reading the rollout ledger for people: what the policy said at an iteration, with its rewards
 * (`align rollouts`, GET /runs/:id/rollouts). Found by listing the store, so it works for runs
 * that are running, finished or failed, without the workflow.
 */
import os from 'node:os';
import path from 'node:path';
import { promptText } from '../../algorithms/data/prompts.js';
import { StoreError } from '../../store/artifact-store.js';
import type { ArtifactStore } from '../../store/artifact-store.js';
import { ledgerStages, listStage, readStage, stageRef } from '../../store/rollout-ledger.js';
import type { StageRef } from '../../store/rollout-ledger.js';
import { STAGE_NAMES } from '../../algorithms/recipes/types.js';
import { utf8Of } from './ledger-records.js';
import type { AdvantageRecord, GeneratedRollout, ScoredRecord } from './ledger-records.js';

export interface RolloutSample {
  row: number;
  prompt: string;
  response: string;
  ended: boolean;
  /** null until the score stage has committed. */
  reward: number | null;
  /** Whether it trained (rejection sampling: whether it was kept); null before the advantages stage. */
  trains: boolean | null;
  policyStep: number;
  seed: number;
}

export interface IterationView {
  runId: string;
  iteration: number;
  /** Every iteration with something in the ledger. */
  iterations: number[];
  stages: { stage: string; parts: number; records: number; writtenBy: string[] }[];
  samples: RolloutSample[];
}

/** One iteration of a run's ledger (default: the newest that has generated rollouts). */
export async function readIteration(store: ArtifactStore, runId: string, iteration?: number): Promise<IterationView> {
  const index = await ledgerStages(store, runId);
  const iterations = [...index.keys()];
  if (iterations.length === 0) throw new StoreError('NotFound', `run ${runId} has no rollouts in ${store.uri} (only online recipes write a rollout ledger)`, false);
  // By default the newest iteration that sampled rollouts (the one after the last holds only its evaluation).
  const it = iteration ?? iterations.filter((i) => index.get(i)!.has('generate')).at(-1) ?? iterations.at(-1)!;
  if (!iterations.includes(it)) throw new StoreError('NotFound', `run ${runId} has no rollouts at iteration ${it}; it has iterations ${iterations[0]}…${iterations.at(-1)}`, false);
  const stages = [];
  const refs: Record<string, StageRef> = {};
  for (const stage of [...STAGE_NAMES, 'eval'].filter((st) => index.get(it)!.has(st))) {
    const found = await listStage(store, runId, it, stage);
    if (found.length === 0) continue;
    refs[stage] = stageRef(runId, it, stage, found);
    stages.push({ stage, parts: found.length, records: found.reduce((n, p) => n + p.records, 0), writtenBy: [...new Set(found.map((p) => p.info?.writtenBy ?? '?'))] });
  }
  const cacheDir = path.join(os.tmpdir(), 'aligner-ledger-view');
  const read = <T>(stage: string) => (refs[stage] ? readStage<T>(store, refs[stage], cacheDir) : Promise.resolve([] as T[]));
  const gen = await read<GeneratedRollout>('generate');
  const scores = await read<ScoredRecord>('score');
  const advs = await read<AdvantageRecord>('advantages');
  const samples = gen.map((g, i): RolloutSample => ({
    row: g.row, prompt: promptText(JSON.parse(utf8Of(g.record)) as Record<string, unknown>), response: utf8Of(g.text), ended: g.ended === 1,
    reward: scores[i]?.reward ?? null, trains: advs[i] ? advs[i].trains === 1 : null, policyStep: g.policyStep, seed: g.seed,
  }));
  return { runId, iteration: it, iterations, stages, samples };
}
