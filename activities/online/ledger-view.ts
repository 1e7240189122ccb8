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
import { ledgerIterations, listStage } from '../../store/rollout-ledger.js';
import { openTokenDataset } from '../../store/token-shards.js';
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

async function records<T>(store: ArtifactStore, prefixes: string[]): Promise<T[]> {
  const out: T[] = [];
  for (const prefix of prefixes) {
    const ds = await openTokenDataset<T>(store, prefix, { cacheDir: path.join(os.tmpdir(), 'aligner-ledger-view') });
    try {
      out.push(...(await ds.getMany(Array.from({ length: ds.count }, (_, i) => i))));
    } finally {
      await ds.close();
    }
  }
  return out;
}

/** One iteration of a run's ledger (default: the newest that has generated rollouts). */
export async function readIteration(store: ArtifactStore, runId: string, iteration?: number): Promise<IterationView> {
  const iterations = await ledgerIterations(store, runId);
  if (iterations.length === 0) throw new StoreError('NotFound', `run ${runId} has no rollouts in ${store.uri} (only online recipes write a rollout ledger)`, false);
  // By default the newest iteration that sampled rollouts (the one after the last holds only its evaluation).
  const sampled = [];
  for (const i of iterations) if ((await listStage(store, runId, i, 'generate')).length > 0) sampled.push(i);
  const it = iteration ?? sampled.at(-1) ?? iterations.at(-1)!;
  if (!iterations.includes(it)) throw new StoreError('NotFound', `run ${runId} has no rollouts at iteration ${it}; it has iterations ${iterations[0]}…${iterations.at(-1)}`, false);
  const stages = [];
  const parts: Record<string, string[]> = {};
  for (const stage of [...STAGE_NAMES, 'eval']) {
    const found = await listStage(store, runId, it, stage);
    if (found.length === 0) continue;
    parts[stage] = found.map((p) => p.prefix);
    stages.push({ stage, parts: found.length, records: found.reduce((n, p) => n + p.records, 0), writtenBy: [...new Set(found.map((p) => p.info?.writtenBy ?? '?'))] });
  }
  const gen = await records<GeneratedRollout>(store, parts.generate ?? []);
  const scores = await records<ScoredRecord>(store, parts.score ?? []);
  const advs = await records<AdvantageRecord>(store, parts.advantages ?? []);
  const samples = gen.map((g, i): RolloutSample => ({
    row: g.row, prompt: promptText(JSON.parse(utf8Of(g.record)) as Record<string, unknown>), response: utf8Of(g.text), ended: g.ended === 1,
    reward: scores[i]?.reward ?? null, trains: advs[i] ? advs[i].trains === 1 : null, policyStep: g.policyStep, seed: g.seed,
  }));
  return { runId, iteration: it, iterations, stages, samples };
}
