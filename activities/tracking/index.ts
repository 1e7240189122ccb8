/**
 * Copies of the metrics ledger for the trackers people already use (config `tracking`):
 * TensorBoard event files in the store, and an MLflow-compatible server. Called by the activities
 * right after they write a chunk to the ledger. The ledger is the record: a tracker that fails is
 * warned about on the worker's stderr and never fails the chunk, and the next chunk tries again.
 *
 * TensorBoard gets exactly one file per ledger chunk (`events.out.tfevents.<step>.<kind>`),
 * rewritten whole when a chunk is retried, so a retried chunk is never counted twice there. MLflow
 * is sent each chunk once per attempt: a chunk retried after it was sent is sent again.
 */
import type { ArtifactStore } from '../../store/artifact-store.js';
import { checkRunId } from '../../store/checkpoints.js';
import { padStep, type EvaluationRow, type StepRow, type ValidationRow } from '../../store/metrics-ledger.js';
import type { TrackingConfig } from '../../algorithms/config/common.js';
import { MlflowSink } from './mlflow.js';
import { eventFile, type Scalar } from './tensorboard.js';

export type LedgerRow = StepRow | ValidationRow | EvaluationRow;

/** The scalars of ledger rows, tagged train/…, validation/… and eval/…. */
export function scalarsOf(rows: readonly LedgerRow[]): Scalar[] {
  const out: Scalar[] = [];
  const add = (tag: string, step: number, value: number | undefined) => {
    if (typeof value === 'number') out.push({ tag, step, value });
  };
  for (const r of rows) {
    if (r.type === 'step') {
      add('train/loss', r.step, r.loss);
      add('train/lr', r.step, r.lr);
      add('train/grad_norm', r.step, r.gradNorm);
      add('train/tokens', r.step, r.tokens);
      for (const [k, v] of Object.entries(r.metrics)) add(`train/${k}`, r.step, v);
    } else if (r.type === 'validation') {
      add('validation/loss', r.step, r.loss);
      for (const [k, v] of Object.entries(r.metrics)) add(`validation/${k}`, r.step, v);
    } else {
      for (const [k, v] of Object.entries(r.metrics)) add(`eval/${k}`, r.step, v);
    }
  }
  return out;
}

/** The folder of a run's event files in the store: `tensorboard --logdir` it. */
export const tensorboardPrefix = (runId: string) => `runs/${checkRunId(runId)}/tensorboard/`;

/**
 * The event file of one ledger entry. Names sort as TensorBoard reads them (it reads a folder's
 * files in name order and, live, only files after the one it is on): by step, and an iteration's
 * evaluation after the chunk that ended there.
 */
export const eventFileKey = (runId: string, step: number, kind: 'steps' | 'eval') =>
  `${tensorboardPrefix(runId)}events.out.tfevents.${padStep(step)}.${kind === 'steps' ? '1-steps' : '2-eval'}`;

const sinks = new Map<string, MlflowSink>();
const mlflowSink = (c: NonNullable<TrackingConfig['mlflow']>) => {
  const key = `${c.uri}\n${c.experiment}`;
  if (!sinks.has(key)) sinks.set(key, new MlflowSink(c.uri, c.experiment));
  return sinks.get(key)!;
};

/** Flattened config values, logged as the MLflow run's parameters. */
function paramsOf(config: unknown, prefix = ''): Record<string, string> {
  if (config === undefined) return {};
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return prefix ? { [prefix]: typeof config === 'string' ? config : JSON.stringify(config) } : {};
  return Object.assign({}, ...Object.entries(config as Record<string, unknown>).map(([k, v]) => paramsOf(v, prefix ? `${prefix}.${k}` : k)));
}

export interface TrackedChunk {
  runId: string;
  /** The ledger entry: a chunk (its last step) or an evaluation (its iteration). */
  step: number;
  kind: 'steps' | 'eval';
  rows: readonly LedgerRow[];
  config: { tracking?: TrackingConfig } & Record<string, unknown>;
}

export async function trackMetrics(store: ArtifactStore, c: TrackedChunk, warn: (m: string) => void = (m) => console.warn(m)): Promise<void> {
  const tracking = c.config.tracking;
  if (!tracking || (!tracking.tensorboard && !tracking.mlflow)) return;
  const scalars = scalarsOf(c.rows);
  if (scalars.length === 0) return;
  const jobs: Promise<void>[] = [];
  if (tracking.tensorboard) {
    jobs.push(store.put(eventFileKey(c.runId, c.step, c.kind), Buffer.from(eventFile(scalars, Date.now() / 1000))).then(() => undefined));
  }
  if (tracking.mlflow) {
    const { tracking: _sinks, ...config } = c.config;
    jobs.push(mlflowSink(tracking.mlflow).log(c.runId, scalars, paramsOf(config)));
  }
  for (const r of await Promise.allSettled(jobs)) {
    if (r.status === 'rejected') warn(`run ${c.runId}: metrics of step ${c.step} not copied to a tracker (the metrics ledger has them): ${(r.reason as Error).message}`);
  }
}
