/**
 * The metrics ledger (DESIGN §7): every training step's, validation's, online iteration's and
 * held-out evaluation's metrics, in the store next to the run's checkpoints.
 *
 *   runs/<run>/metrics/steps/0000000012.jsonl   one chunk: the steps after the chunk's starting
 *                                               checkpoint up to step 12, and its validation
 *   runs/<run>/metrics/evals/0000000012.json    the held-out evaluation of the policy at step 12
 *
 * A chunk is written by the activity that trains it, just before it commits the chunk's
 * checkpoint, so every committed checkpoint has its steps in the ledger; a chunk retried or
 * redone after a crash writes the same key again (the same steps, the same values). Reading
 * keeps each step once (the latest chunk that holds it) and follows the run's lineage: a run
 * resumed from another run's checkpoint (resume-failed, a pipeline stage run again) starts with
 * that run's history up to the checkpoint, so the history is continuous across runs.
 */
import { StoreError } from './artifact-store.js';
import type { ArtifactStore } from './artifact-store.js';
import { checkRunId } from './checkpoints.js';

export type MetricValues = Record<string, number>;

export interface StepRow {
  type: 'step';
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  metrics: MetricValues;
}

export interface ValidationRow {
  type: 'validation';
  step: number;
  loss: number;
  metrics: MetricValues;
  headline?: { metric: string; value: number; higherIsBetter?: boolean };
}

export interface EvaluationRow {
  type: 'evaluation';
  step: number;
  metrics: MetricValues;
}

/** The first line of a chunk: the steps it holds and the checkpoint it started from. */
export interface ChunkHeader {
  type: 'chunk';
  fromStep: number;
  toStep: number;
  /** The checkpoint the chunk trained from (null: the base model). */
  parent: { uri: string; step: number } | null;
}

export interface MetricsHistory {
  steps: StepRow[];
  validations: ValidationRow[];
  evaluations: EvaluationRow[];
  /** The runs the history is made of, oldest first, with the steps each contributes. */
  lineage: { runId: string; fromStep: number; toStep: number }[];
}

/** A step as a fixed-width key part, so that keys sort by step. */
export const padStep = (n: number) => String(n).padStart(10, '0');
const metricsPrefix = (runId: string) => `runs/${checkRunId(runId)}/metrics/`;
export const metricsChunkKey = (runId: string, toStep: number) => `${metricsPrefix(runId)}steps/${padStep(toStep)}.jsonl`;
export const evaluationKey = (runId: string, step: number) => `${metricsPrefix(runId)}evals/${padStep(step)}.json`;

/** Writes one chunk of a run's steps (its header first); the same chunk written again replaces itself. */
export async function writeMetricsChunk(
  store: ArtifactStore, runId: string, chunk: Omit<ChunkHeader, 'type'>, rows: readonly (StepRow | ValidationRow)[],
): Promise<void> {
  const lines = [{ type: 'chunk', ...chunk } satisfies ChunkHeader, ...rows].map((r) => JSON.stringify(r));
  await store.put(metricsChunkKey(runId, chunk.toStep), Buffer.from(`${lines.join('\n')}\n`, 'utf8'));
}

export async function writeEvaluation(store: ArtifactStore, runId: string, row: Omit<EvaluationRow, 'type'>): Promise<void> {
  await store.put(evaluationKey(runId, row.step), Buffer.from(JSON.stringify({ type: 'evaluation', ...row } satisfies EvaluationRow), 'utf8'));
}

/** The run and step of a checkpoint URI (…/runs/<run>/checkpoints/<step>/), or null. */
export function checkpointOrigin(uri: string): { runId: string; step: number } | null {
  const m = /\/runs\/([^/]+)\/checkpoints\/(\d+)\/?$/.exec(uri);
  return m ? { runId: m[1], step: Number(m[2]) } : null;
}

async function listKeys(store: ArtifactStore, prefix: string): Promise<string[]> {
  try {
    return (await store.list(prefix)).map((o) => o.key).sort();
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NotFound') return [];
    throw e;
  }
}

/** One run's own ledger: its chunks in step order, each step once (a later chunk's row wins). */
async function readOwn(store: ArtifactStore, runId: string) {
  const steps = new Map<number, StepRow>();
  const validations = new Map<number, ValidationRow>();
  let first: ChunkHeader | null = null;
  // Read concurrently (a long run has many chunks, and S3 reads are round trips), applied in key order.
  const chunkKeys = (await listKeys(store, `${metricsPrefix(runId)}steps/`)).filter((k) => k.endsWith('.jsonl'));
  const texts = await Promise.all(chunkKeys.map(async (k) => (await store.get(k)).toString('utf8')));
  for (const [c, text] of texts.entries()) {
    const key = chunkKeys[c];
    for (const [i, line] of text.split('\n').entries()) {
      if (!line.trim()) continue;
      let row: ChunkHeader | StepRow | ValidationRow;
      try {
        row = JSON.parse(line) as typeof row;
      } catch {
        throw new StoreError('Corrupt', `metrics ledger ${key}:${i + 1} is not JSON`, false);
      }
      if (row.type === 'chunk') {
        if (!first || row.fromStep < first.fromStep) first = row;
      } else if (row.type === 'step') steps.set(row.step, row);
      else if (row.type === 'validation') validations.set(row.step, row);
    }
  }
  const evalKeys = (await listKeys(store, `${metricsPrefix(runId)}evals/`)).filter((k) => k.endsWith('.json'));
  const evaluations = await Promise.all(evalKeys.map(async (k) => JSON.parse((await store.get(k)).toString('utf8')) as EvaluationRow));
  return { steps, validations, evaluations, first };
}

/**
 * A run's full metrics history, oldest first: its ancestors' up to the checkpoint it resumed from,
 * then its own, each step once. `maxDepth` bounds the lineage walked.
 */
export async function readMetricsHistory(store: ArtifactStore, runId: string, maxDepth = 32): Promise<MetricsHistory> {
  const own = await readOwn(store, runId);
  const ownSteps = [...own.steps.keys()];
  const fromStep = own.first?.fromStep ?? (ownSteps.length ? Math.min(...ownSteps) - 1 : 0);
  const toStep = ownSteps.length ? Math.max(...ownSteps) : fromStep;
  let history: MetricsHistory = { steps: [], validations: [], evaluations: [], lineage: [] };
  const origin = own.first?.parent ? checkpointOrigin(own.first.parent.uri) : null;
  if (origin && origin.runId !== runId && maxDepth > 0) {
    const before = await readMetricsHistory(store, origin.runId, maxDepth - 1);
    const upTo = (r: { step: number }) => r.step <= origin.step;
    history = {
      steps: before.steps.filter(upTo), validations: before.validations.filter(upTo), evaluations: before.evaluations.filter(upTo),
      lineage: before.lineage.filter((l) => l.fromStep < origin.step).map((l) => ({ ...l, toStep: Math.min(l.toStep, origin.step) })),
    };
  }
  const byStep = <T extends { step: number }>(a: T, b: T) => a.step - b.step;
  // The run's own rows replace an ancestor's at the same step (its resume point's validation).
  const mine = <T extends { step: number }>(theirs: T[], ours: T[]) => [...theirs.filter((r) => !ours.some((o) => o.step === r.step)), ...ours].sort(byStep);
  return {
    steps: mine(history.steps, [...own.steps.values()]),
    validations: mine(history.validations, [...own.validations.values()]),
    evaluations: mine(history.evaluations, own.evaluations),
    lineage: [...history.lineage, { runId, fromStep, toStep }],
  };
}
