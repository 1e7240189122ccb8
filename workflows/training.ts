/**
 * The training loop of every offline recipe, as a Temporal workflow: prepare the data once,
 * precompute what the recipe needs from fixed models (reference log-probs, teacher top-K), then train
 * in chunks that each end with a committed checkpoint (older ones pruned to trainer.keepCheckpoints
 * by the same activity), on the worker that holds the model
 * (a per-worker task queue). If that worker disappears, the run is placed on another worker,
 * which reloads the last checkpoint: nothing before it is lost, and the data order depends only
 * on the step, so the result is the same as an uninterrupted run. Signals pause, resume and stop
 * the run; the `progress` query reports it; the history is renewed with continueAsNew.
 *
 * Deterministic code only: no I/O, no clocks, no tensors (activities do all of that).
 */
import {
  ActivityFailure, ApplicationFailure, TimeoutFailure, condition, continueAsNew, defineQuery, defineSignal,
  isCancellation, patched, proxyActivities, setHandler, sleep, workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { HangReport } from '../activities/heartbeat.js';
import { charge, costOf, emptyUsage } from './usage.js';
import type { CarriedState, ChunkRequest, ChunkResult, Progress, RunEvent, RunInput, RunResult, RunStatus } from '../activities/types.js';
import { rankSlot, rendezvousName } from './gang-names.js';

/** Where a run's chunks run: one worker, or the workers of a gang's ranks. */
interface Placement {
  /** For events: the worker queue, or the ranks' queues. */
  where: string;
  chunk(req: ChunkRequest): Promise<ChunkResult>;
  /** The run ended: every rank's worker frees its models, and the uncommitted uploads go. */
  release(): Promise<void>;
  /** The run moves: free what the old workers hold, without waiting for a dead one. */
  releaseQuietly(): void;
}

/** One failure to report for a gang chunk: a cause another worker would not fix wins over lost ranks. */
function gangFailure(reasons: unknown[]): unknown {
  return reasons.find((e) => !isPlacementFailure(e)) ?? reasons[0];
}

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const stopSignal = defineSignal('stop');
export const progressQuery = defineQuery<Progress>('progress');

export const CONTROL_QUEUE = 'align-control';
export const COMPUTE_QUEUE = 'align-cpu';
/** How long a silent worker is trusted (RunInput.heartbeatSeconds): a dead worker's run moves within about this. */
export const DEFAULT_HEARTBEAT_SECONDS = 10;
/** Times a chunk is re-placed on another worker before the run fails. */
export const MAX_REPLACEMENTS = 5;
/** Workflow changes since the recorded histories, each behind patched() (test/workflows/histories). */
const RECIPE_TABLE_PATCH = 'recipe-table-precompute-v1';
/** A run's worker gives its models back when the run ends or fails (not when it continues as new). */
const RELEASE_PATCH = 'release-resident-v1';
/** A store outage is waited out with backoff (not spent as re-placements). */
const STORE_WAIT_PATCH = 'store-outage-wait-v1';
/** A chunk whose worker was preempted (SIGTERM) is placed again at once. */
const PREEMPT_PATCH = 'preempted-chunk-replace-v1';
/** A run with config.parallel trains as a gang of ranks, one per worker process. */
const GANG_PATCH = 'gang-runs-v1';
/** A gang that cannot place its next rank gives back the ranks it holds, and tries again after a jittered pause. */
const GANG_GIVE_BACK_PATCH = 'gang-give-back-v1';
/** Default of RunInput.gangPlaceSeconds. */
export const GANG_PLACE_SECONDS = 30;
/** How long a gang's ranks wait for each other, at the rendezvous and at every collective. */
export const GANG_TIMEOUT_MS = 120_000;
/** Default of RunInput.storeRetrySeconds: how long a run waits for its store before it fails. */
export const STORE_RETRY_SECONDS = 300;

export function controlOn(taskQueue: string) {
  return proxyActivities<Activities>({
    taskQueue,
    startToCloseTimeout: '30 minutes',
    // ~4.5 minutes of retries with backoff: a store outage of a few minutes is ridden out.
    retry: { maximumAttempts: 10, initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: ['DataError', 'ConfigError', 'CheckpointError'] },
  });
}

/**
 * The shared compute queue: any worker may take the task, so waiting for one is waiting for
 * capacity (no schedule-to-start limit); a worker that dies while running it stops heartbeating.
 */
export function sharedOn(taskQueue: string, heartbeatSeconds: number) {
  return proxyActivities<Activities>({
    taskQueue, startToCloseTimeout: '24 hours', heartbeatTimeout: `${heartbeatSeconds} seconds`, retry: { maximumAttempts: 1 },
  });
}

/** Placement: offered again with a short backoff until a worker with a free slot takes the run. */
export function placementOn(taskQueue: string) {
  return proxyActivities<Activities>({
    taskQueue, startToCloseTimeout: '1 minute',
    // No attempt limit: waiting is not failing. Polls stay frequent, so a freed slot is taken at once.
    retry: { initialInterval: '500 milliseconds', backoffCoefficient: 1.5, maximumInterval: '2 seconds' },
  });
}

/** Placement that gives up after `seconds` (a gang's later ranks: holding ranks while waiting could starve another gang). */
function placementWithin(taskQueue: string, seconds: number) {
  return proxyActivities<Activities>({
    taskQueue, startToCloseTimeout: '1 minute', scheduleToCloseTimeout: `${seconds} seconds`,
    retry: { initialInterval: '500 milliseconds', backoffCoefficient: 1.5, maximumInterval: '2 seconds' },
  });
}

/** A run's own worker's queue: a task nobody starts within the heartbeat time means the worker is gone. */
export function computeOn(taskQueue: string, heartbeatSeconds: number) {
  return proxyActivities<Activities>({
    taskQueue,
    // A dead worker never starts the task, or stops heartbeating: both surface as timeouts here.
    scheduleToStartTimeout: `${heartbeatSeconds} seconds`,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${heartbeatSeconds} seconds`,
    retry: { maximumAttempts: 1 },
  });
}

/** Best effort, short: a worker that is gone has nothing to give back. */
export function releaseOn(taskQueue: string) {
  return proxyActivities<Activities>({ taskQueue, scheduleToStartTimeout: '10 seconds', startToCloseTimeout: '1 minute', retry: { maximumAttempts: 1 } });
}

/** The run has ended: its worker frees its models, and its uploads that never committed are removed. */
export async function release(queue: string, control: string, runId: string): Promise<void> {
  try {
    await releaseOn(queue).releaseRun({ runId });
  } catch {
    // The worker died or is gone: its memory went with it.
  }
  try {
    await releaseOn(control).cleanRun({ runId });
  } catch {
    // Best effort: retention and the next cleanup remove them too.
  }
}

/** The store's own message when a failure is a store outage (retryable StoreError): worth waiting out, not a lost worker. */
export function storeOutage(err: unknown): string | null {
  if (!(err instanceof ActivityFailure)) return null;
  const c = err.cause;
  return c instanceof ApplicationFailure && !c.nonRetryable && c.type === 'StoreError' ? c.message : null;
}

/**
 * One backoff step of waiting out a store outage: 1, 2, 4 … 30 s, never past the budget. Shows
 * what the run waits for through `show`; returns the seconds waited so far.
 */
export async function waitForStore(outage: string, waited: number, budget: number, show: (waiting: string) => void): Promise<number> {
  const pause = Math.min(30, 2 ** Math.min(5, Math.round(Math.log2(waited + 1))), budget - waited);
  show(`waiting for the store (${outage}); retrying for up to ${budget - waited} s more`);
  await sleep(pause * 1000);
  return waited + pause;
}

/** What the hang watchdog said of an attempt it gave up on (its last heartbeat), or null. */
export function hangOf(err: unknown): HangReport | null {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof TimeoutFailure)) return null;
  const details = err.cause.lastHeartbeatDetails as { hung?: HangReport } | null | undefined;
  return details?.hung ?? null;
}

/** A failure that another worker might not have: lost worker, timeout, transient error. */
export function isPlacementFailure(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  if (cause instanceof TimeoutFailure) return true;
  return cause instanceof ApplicationFailure && !cause.nonRetryable;
}

/** A failure's message, for an event line. */
function errorText(err: unknown): string {
  const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Runs an activity, retrying it on another worker while failures are placement failures. */
async function withReplacement<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isPlacementFailure(err) || attempt >= MAX_REPLACEMENTS) throw err;
    }
  }
}

export async function trainingWorkflow(input: RunInput): Promise<RunResult> {
  const { runId, recipe, config } = input;
  const t = config.trainer;
  const heartbeat = input.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
  const control = controlOn(input.queues?.control ?? CONTROL_QUEUE);
  const sharedCompute = input.queues?.compute ?? COMPUTE_QUEUE;
  let status: RunStatus = 'preparing';
  let paused = false, stopRequested = false;
  let pauseReason: string | null = null;
  let exportUri: string | null = null;
  let waiting: string | null = null;
  const s: CarriedState = input.carried ?? {
    step: input.resumeFrom?.step ?? 0, dataset: null as never, lastCheckpoint: input.resumeFrom ?? null,
    history: [], validations: [], tokensSeen: 0, trainSeconds: 0, precomputed: null,
  };
  let firstValidation: CarriedState['validations'][number] | null = s.validations[0] ?? null;

  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => {
    paused = false;
    pauseReason = null;
  });
  setHandler(stopSignal, () => void (stopRequested = true));
  setHandler(progressQuery, (): Progress => ({
    runId, recipe, status, step: s.step, maxSteps: t.maxSteps,
    lastLoss: s.history.at(-1)?.loss ?? null, lastValidation: s.validations.at(-1) ?? null, lastCheckpoint: s.lastCheckpoint,
    tokensPerSecond: s.trainSeconds > 0 ? s.tokensSeen / s.trainSeconds : null, recent: s.history.slice(-20),
    parentRunId: input.parentRunId ?? null, exportUri, firstValidation, report: s.dataset?.report ?? null, waiting, events: s.events ?? [],
    usage: s.usage ?? emptyUsage(), cost: costOf(s.usage ?? emptyUsage(), config.cost), pauseReason: paused ? pauseReason : null,
  }));
  const record = (e: RunEvent) => void (s.events = [...(s.events ?? []), e].slice(-50));

  if (!input.carried) s.dataset = await control.prepareDataset({ runId, recipe, config });
  const tableAware = patched(RECIPE_TABLE_PATCH);
  if (tableAware && !input.carried) {
    status = 'precomputing';
    s.precomputed = await withReplacement(() => sharedOn(sharedCompute, heartbeat).precompute({ runId, recipe, config, dataset: s.dataset }));
  }
  const controlQueue = input.queues?.control ?? CONTROL_QUEUE;
  const layout = config.parallel ?? { dp: 1, tp: 1, pp: 1 };
  const gangSize = layout.dp * layout.tp * layout.pp > 1 && patched(GANG_PATCH) ? layout.dp * layout.tp * layout.pp : 1;
  const placeOne = async (): Promise<Placement> => {
    status = 'waiting';
    waiting = 'waiting for a compute worker with a free slot';
    const q = await placementOn(sharedCompute).placeRun({ runId });
    waiting = null;
    return {
      where: q,
      chunk: (req) => computeOn(q, heartbeat).trainChunk(req),
      release: () => release(q, controlQueue, runId),
      releaseQuietly: () => void releaseOn(q).releaseRun({ runId }).catch(() => false),
    };
  };
  // A gang: every rank on a worker process of its own (placement refuses a second rank of the
  // same gang), a fresh rendezvous per attempt; waiting for capacity is a status, never a failure.
  // All or nothing: a gang that cannot place its next rank within gangPlaceSeconds gives back the
  // ranks it holds and tries again after a jittered pause, so two gangs that each hold part of a
  // fleet never wait for each other.
  const givesBack = gangSize > 1 && patched(GANG_GIVE_BACK_PATCH);
  const placeSeconds = input.gangPlaceSeconds ?? GANG_PLACE_SECONDS;
  let gaveBack = 0;
  const placeGang = async (): Promise<Placement> => {
    status = 'waiting';
    const queues: string[] = [];
    let host: string | null = null;
    while (queues.length < gangSize) {
      const r = queues.length;
      waiting = `waiting for compute workers${host ? ` on ${host}` : ''}: ${r} of ${gangSize} ranks placed (parallel dp=${layout.dp} tp=${layout.tp} pp=${layout.pp}, one worker process per rank)`
        + (gaveBack ? `; gave its ranks back ${gaveBack} time${gaveBack === 1 ? '' : 's'} for others to place` : '');
      const args = { runId: rankSlot(runId, r), owner: runId, gang: runId, ...(host ? { host } : {}) };
      let q: string;
      if (givesBack && r > 0) {
        try {
          q = await placementWithin(sharedCompute, placeSeconds).placeRun(args);
        } catch (err) {
          if (isCancellation(err)) throw err;
          await Promise.all(queues.map((held, k) => releaseOn(held).releaseRun({ runId: rankSlot(runId, k) }).catch(() => false)));
          queues.length = 0;
          host = null;
          gaveBack++;
          // Workflow randomness is replay-safe; the jitter keeps competing gangs from retrying in step.
          await sleep(Math.round(1000 + 4000 * Math.random()));
          continue;
        }
      } else q = await placementOn(sharedCompute).placeRun(args);
      if (r === 0) {
        try {
          host = await computeOn(q, heartbeat).workerHost();
        } catch {
          // That worker went away at once: start the placement over.
          void releaseOn(q).releaseRun({ runId: rankSlot(runId, 0) }).catch(() => false);
          continue;
        }
      }
      queues.push(q);
    }
    waiting = null;
    s.gangAttempts = (s.gangAttempts ?? 0) + 1;
    const rendezvous = { name: rendezvousName(workflowInfo().runId, s.gangAttempts), world: gangSize, timeoutMs: GANG_TIMEOUT_MS };
    const releaseRank = (q: string, r: number) => releaseOn(q).releaseRun({ runId: rankSlot(runId, r) }).catch(() => false);
    return {
      where: queues.join(','),
      async chunk(req) {
        const settled = await Promise.allSettled(queues.map((q, r) => computeOn(q, heartbeat).gangChunk({ ...req, gang: { rank: r, rendezvous } })));
        const failures = settled.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as unknown);
        if (failures.length > 0) throw gangFailure(failures);
        const lead = (settled[0] as PromiseFulfilledResult<Awaited<ReturnType<ReturnType<typeof computeOn>['gangChunk']>>>).value;
        return { ...lead, checkpoint: lead.checkpoint! };
      },
      async release() {
        await Promise.all(queues.map(releaseRank));
        try {
          await releaseOn(controlQueue).cleanRun({ runId });
        } catch {
          // Best effort, as for one worker.
        }
      },
      releaseQuietly: () => void Promise.all(queues.map(releaseRank)),
    };
  };
  const place = (): Promise<Placement> => (gangSize > 1 ? placeGang() : placeOne());
  let placement = await place();
  let chunks = 0, replacements = 0, storeWaited = 0;
  const storeBudget = input.storeRetrySeconds ?? STORE_RETRY_SECONDS;
  const every = t.checkpointEvery > 0 ? t.checkpointEvery : t.maxSteps;

  while (s.step < t.maxSteps && !stopRequested) {
    status = paused ? 'paused' : 'training';
    await condition(() => !paused || stopRequested);
    if (stopRequested) break;
    status = 'training';
    const toStep = Math.min(t.maxSteps, (Math.floor(s.step / every) + 1) * every);
    // Validation is planned by the chunk's nominal start, so a chunk cut short by a preempted
    // worker validates at the same steps as an uninterrupted run.
    const chunkStart = Math.max(0, toStep - every);
    const validate = toStep === t.maxSteps || (t.valEvery > 0 && Math.floor(toStep / t.valEvery) > Math.floor(Math.min(s.step, chunkStart) / t.valEvery));
    try {
      const r = await placement.chunk({
        runId, recipe, config, dataset: s.dataset, fromStep: s.step, toStep, checkpoint: s.lastCheckpoint, validate,
        ...(tableAware ? { precomputed: s.precomputed ?? null, validateBefore: s.step === 0 && s.validations.length === 0 } : {}),
      });
      if (r.validationBefore) {
        s.validations = [r.validationBefore, ...s.validations];
        firstValidation = r.validationBefore;
      }
      s.step = r.step;
      s.lastCheckpoint = r.checkpoint;
      s.history = [...s.history, ...r.steps].slice(-200);
      if (r.validation) s.validations = [...s.validations, r.validation];
      s.tokensSeen += r.steps.reduce((a, x) => a + x.tokens, 0);
      s.trainSeconds += r.seconds;
      const over = charge(s, r.phases ?? { training: r.seconds }, { tokens: r.steps.reduce((a, x) => a + x.tokens, 0) }, config.budget?.maxDeviceHours);
      // Paused, not failed: the run holds its checkpoint and goes on when resumed.
      if (over) [paused, pauseReason] = [true, over];
      storeWaited = 0;
      waiting = null;
      if (r.preempted && patched(PREEMPT_PATCH)) {
        // Its worker is being taken away and handed the run back at its last step: place it again now.
        record({ type: 'preempted', step: r.step, worker: placement.where, detail: `the worker was taken away (SIGTERM); it committed step ${r.step} and handed the run back` });
        placement = await place();
      }
    } catch (err) {
      const outage = storeOutage(err);
      if (outage && storeWaited < storeBudget && patched(STORE_WAIT_PATCH)) {
        // The worker is fine, the store is not: wait with backoff on the same worker, then redo the
        // chunk from the last committed checkpoint (nothing committed is lost).
        status = 'waiting';
        storeWaited = await waitForStore(outage, storeWaited, storeBudget, (w) => (waiting = w));
        continue;
      }
      if (!isPlacementFailure(err) || ++replacements > MAX_REPLACEMENTS) {
        if (patched(RELEASE_PATCH)) await placement.release();
        throw err;
      }
      // The worker holding the model is gone (or failed transiently): give its slot back (if it is
      // alive), place the run again; the next chunk starts from the last committed checkpoint on
      // whichever worker takes it.
      const hung = hangOf(err);
      if (hung) record({ type: 'hang', step: s.step, worker: placement.where, detail: `no progress for ${hung.seconds} s (last report: ${JSON.stringify(hung.last)}); moved from the checkpoint at step ${s.step}` });
      // Not awaited: a dead worker would make the run wait for its schedule-to-start timeout.
      if (patched(RELEASE_PATCH)) placement.releaseQuietly();
      if (gangSize > 1) record({ type: 'gang-restart', step: s.step, worker: placement.where, detail: `a rank was lost (${errorText(err)}); the gang restarts from the checkpoint at step ${s.step}` });
      placement = await place();
      continue;
    }
    if (++chunks >= t.continueAsNewEvery && s.step < t.maxSteps && !stopRequested) {
      await continueAsNew<typeof trainingWorkflow>({ ...input, carried: s });
    }
  }

  if (patched(RELEASE_PATCH)) await placement.release();
  status = stopRequested ? 'stopped' : 'exporting';
  if (!stopRequested && s.lastCheckpoint) exportUri = await control.exportModel({ runId, checkpoint: s.lastCheckpoint });
  status = stopRequested ? 'stopped' : 'completed';
  return { runId, status, step: s.step, lastCheckpoint: s.lastCheckpoint, exportUri, validations: s.validations };
}

/** The workflow id a run gets (its run id), so that one id finds it everywhere. */
export const workflowIdOf = (runId: string): string => runId;
export const currentRunId = (): string => workflowInfo().workflowId;
