/**
 * The experience loop every online recipe runs (PPO, REINFORCE, GRPO, rejection sampling): each
 * recipe's workflow file says which stages one iteration runs and where; this file runs them
 * durably. Every stage is an activity idempotent per (run, iteration, stage) that writes to the
 * rollout ledger and returns a small reference, which the workflow keeps until the iteration's
 * checkpoint commits. So:
 *  - a lost worker is replaced and the stage is asked again: generation redoes only its unfinished
 *    shard, training retrains from the last checkpoint, and nothing already in the ledger is redone;
 *  - the prompt cursor is the iteration, committed with the checkpoint, never ahead of what trained;
 *  - a store outage is waited out, a bad reward or config fails the run with its message.
 *
 * Deterministic code only: no I/O, no clocks, no tensors.
 */
import {
  ActivityCancellationType, ActivityFailure, CancellationScope, condition, continueAsNew, isCancellation, patched, proxyActivities, setHandler, TimeoutFailure, workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { Evaluation, IterationRequest, LoopState, StageName, StageRef, StageResult, TrainResult } from '../activities/online/types.js';
import type { CheckpointRef, DatasetRef, Progress, RunEvent, RunInput, RunResult, RunStatus, StepSummary, Usage, Validation } from '../activities/types.js';
import { addUsage, charge, costOf, emptyUsage } from './usage.js';
import { rendezvousName, rolloutSlot } from './gang-names.js';
import {
  computeOn, CONTROL_QUEUE, COMPUTE_QUEUE, controlOn, DEFAULT_HEARTBEAT_SECONDS, GANG_TIMEOUT_MS, hangOf, isPlacementFailure, MAX_REPLACEMENTS, pauseSignal,
  placementOn, progressQuery, release, releaseOn, resumeSignal, sharedOn, stopSignal, storeOutage, STORE_RETRY_SECONDS, waitForStore,
} from './training.js';

/**
 * Where a stage runs: on the run's worker (actor, reference and, by default, the critic resident),
 * on the critic's own worker (PPO with ppo.criticWorker = own), on any compute worker (the reward),
 * or on the control queue. With config.parallel, the actor's generation and log-probs also run on
 * the run's rollout replicas, and the score stage in several parts at once.
 */
export type StageSite = 'actor' | 'critic' | 'anywhere' | 'control';

/** Where one call of a stage runs: a site, or rollout replica k ≥ 1 (k = 0 is the actor's worker). */
type CallSite = StageSite | { replica: number };

/** The roles' layout of config.parallel (algorithms/recipes/online/config.ts onlineParallelSchema). */
interface RoleLayout {
  actor?: { dp: number };
  rollout?: { dp: number };
  reward?: { dp: number };
}

export interface LoopOptions {
  /** The critic lives on a worker of its own: placed as `<run>-critic`, trained there in parallel with the actor. */
  ownCritic?: boolean;
}

/** What an iteration's code can do: run a stage, then train (which commits the iteration). */
export interface IterationContext {
  stage(name: Exclude<StageName, 'train'>, site: StageSite): Promise<StageResult>;
  train(): Promise<TrainResult>;
}

export type Iteration = (run: IterationContext) => Promise<TrainResult>;

/** What a loop carries across continueAsNew. */
export interface LoopCarried {
  iteration: number;
  dataset: DatasetRef;
  lastCheckpoint: CheckpointRef | null;
  state: LoopState | null;
  history: StepSummary[];
  validations: Validation[];
  tokensSeen: number;
  trainSeconds: number;
  /** The own-worker critic's checkpoint after the last iteration (LoopOptions.ownCritic). */
  criticCheckpoint?: CheckpointRef | null;
  /** The policy on held-out prompts: at the start, every trainer.valEvery iterations, at the end. */
  evaluations?: Evaluation[];
  usage?: Usage;
  /** The budget has paused the run once (resume goes on past it). */
  budgetPaused?: boolean;
  /** Hangs the watchdog found (the latest 50). */
  events?: RunEvent[];
}

const STAGE_ACTIVITY = {
  generate: 'generateRollouts', score: 'scoreRollouts', logprobs: 'computeLogprobs', values: 'computeValues', advantages: 'computeAdvantages',
} as const;

/**
 * A rank of the actor's data-parallel training on its worker (computeOn's limits): cancelling it
 * waits until the activity has acknowledged (it stops waiting at the rendezvous; during training
 * a lost peer fails its next collective).
 */
function actorRankOn(taskQueue: string, heartbeatSeconds: number) {
  return proxyActivities<Activities>({
    taskQueue, scheduleToStartTimeout: `${heartbeatSeconds} seconds`, startToCloseTimeout: '24 hours', heartbeatTimeout: `${heartbeatSeconds} seconds`,
    retry: { maximumAttempts: 1 }, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** The store run and slot of an own-worker critic; the same name as activities/online/critic.ts criticRunId. */
const criticIdOf = (runId: string): string => `${runId}-critic`;

export async function experienceLoop(input: RunInput & { loop?: LoopCarried | null }, iterate: Iteration, opts: LoopOptions = {}): Promise<RunResult> {
  const { runId, recipe, config } = input;
  const t = config.trainer;
  const heartbeat = input.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
  const controlQueue = input.queues?.control ?? CONTROL_QUEUE;
  const sharedQueue = input.queues?.compute ?? COMPUTE_QUEUE;
  const control = controlOn(controlQueue);
  const storeBudget = input.storeRetrySeconds ?? STORE_RETRY_SECONDS;
  let status: RunStatus = 'preparing';
  let paused = false, stopRequested = false;
  let pauseReason: string | null = null;
  let exportUri: string | null = null, waiting: string | null = null, currentStage: string | null = null;
  const s: LoopCarried = input.loop ?? {
    iteration: input.resumeFrom?.step ?? 0, dataset: null as never, lastCheckpoint: input.resumeFrom ?? null, state: null,
    history: [], validations: [], tokensSeen: 0, trainSeconds: 0, criticCheckpoint: input.resumeCritic ?? null, evaluations: [],
  };
  s.evaluations ??= [];

  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => {
    paused = false;
    pauseReason = null;
  });
  setHandler(stopSignal, () => void (stopRequested = true));
  setHandler(progressQuery, (): Progress => ({
    runId, recipe, status, step: s.iteration, maxSteps: t.maxSteps,
    lastLoss: s.history.at(-1)?.loss ?? null, lastValidation: s.validations.at(-1) ?? null, lastCheckpoint: s.lastCheckpoint,
    tokensPerSecond: s.trainSeconds > 0 ? s.tokensSeen / s.trainSeconds : null, recent: s.history.slice(-20),
    parentRunId: input.parentRunId ?? null, exportUri, firstValidation: s.validations[0] ?? null, report: s.dataset?.report ?? null,
    waiting, stage: currentStage, evaluations: s.evaluations, events: s.events ?? [],
    usage: s.usage ?? emptyUsage(), cost: costOf(s.usage ?? emptyUsage(), config.cost), pauseReason: paused ? pauseReason : null,
  }));

  if (!input.loop) s.dataset = await control.prepareDataset({ runId, recipe, config });
  // config.parallel: rollout replicas (each a worker slot of its own), score parts, and the
  // actor's data-parallel ranks (its worker and the first replicas). Older histories never had
  // them, hence the patch; without a parallel section nothing changes.
  const layout = (config as { parallel?: RoleLayout }).parallel;
  const split = ((layout?.rollout?.dp ?? 1) > 1 || (layout?.reward?.dp ?? 1) > 1 || (layout?.actor?.dp ?? 1) > 1) && patched('online-role-layouts-v1');
  const rolloutWorkers = split ? layout?.rollout?.dp ?? 1 : 1;
  const scoreParts = split ? layout?.reward?.dp ?? 1 : 1;
  const trainers = split ? layout?.actor?.dp ?? 1 : 1;
  // Replicas need worker processes of their own (two on one engine would only share it), and the
  // actor's ranks one host (shared memory).
  const rankSlots = Array.from({ length: trainers }, (_, k) => rolloutSlot(runId, k));
  const replicaSlots = Array.from({ length: rolloutWorkers }, (_, k) => rolloutSlot(runId, k));
  const place = async (id = runId, role = '', host: string | null = null): Promise<string> => {
    status = 'waiting';
    waiting = `waiting for a compute worker with a free slot${role ? ` (for ${role})` : ''}${host ? ` on ${host}` : ''}`;
    const apart = rolloutWorkers > 1 && replicaSlots.includes(id) ? { apartFrom: replicaSlots, ...(host && rankSlots.includes(id) ? { host } : {}) } : {};
    const q = await placementOn(sharedQueue).placeRun({ runId: id, ...apart });
    waiting = null;
    status = 'training';
    return q;
  };
  const criticId = criticIdOf(runId);
  let queue = await place();
  let criticQueue = opts.ownCritic ? await place(criticId, 'the critic') : '';
  const replicaRole = (k: number) => `rollout replica ${k} of ${rolloutWorkers - 1}${k < trainers ? `, actor rank ${k}` : ''}`;
  /** The actor's host (where its other ranks must be), once asked of its worker; null when unknown or stale. */
  let actorHost: string | null = null;
  const replicaQueues: string[] = [''];
  const replicaHosts: (string | null)[] = [null];
  const placeReplica = async (k: number): Promise<void> => {
    const host = k < trainers ? actorHost : null;
    replicaQueues[k] = await place(rolloutSlot(runId, k), replicaRole(k), host);
    replicaHosts[k] = host;
  };
  const learnActorHost = async (): Promise<void> => {
    while (actorHost === null) {
      try {
        actorHost = await computeOn(queue, heartbeat).workerHost();
      } catch {
        // That worker went away at once: place the actor again.
        void releaseOn(queue).releaseRun({ runId }).catch(() => false);
        queue = await place();
      }
    }
  };
  if (trainers > 1) await learnActorHost();
  for (let k = 1; k < rolloutWorkers; k++) await placeReplica(k);
  const releaseAll = async () => {
    await release(queue, controlQueue, runId);
    if (opts.ownCritic) await release(criticQueue, controlQueue, criticId);
    for (let k = 1; k < rolloutWorkers; k++) await releaseOn(replicaQueues[k]).releaseRun({ runId: rolloutSlot(runId, k) }).catch(() => false);
  };
  let replacements = 0, storeWaited = 0;

  /** Runs `call` until it succeeds: a lost worker is replaced, a store outage waited out; anything else fails the run. */
  async function durably<T>(site: CallSite, call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const r = await call();
        storeWaited = 0;
        waiting = null;
        status = 'training';
        return r;
      } catch (err) {
        const outage = storeOutage(err);
        if (outage && storeWaited < storeBudget) {
          status = 'waiting';
          storeWaited = await waitForStore(outage, storeWaited, storeBudget, (w) => (waiting = w));
          continue;
        }
        if (!isPlacementFailure(err) || ++replacements > MAX_REPLACEMENTS) {
          await releaseAll();
          throw err;
        }
        const hung = hangOf(err);
        const worker = typeof site === 'object' ? replicaQueues[site.replica] : site === 'critic' ? criticQueue : queue;
        if (hung) s.events = [...(s.events ?? []), { type: 'hang' as const, step: s.iteration, worker, detail: `no progress for ${hung.seconds} s (last report: ${JSON.stringify(hung.last)}); the iteration goes on from the ledger` }].slice(-50);
        if (typeof site === 'object') {
          // The replica's worker is gone: another takes its slot and loads the same checkpoint.
          void releaseOn(replicaQueues[site.replica]).releaseRun({ runId: rolloutSlot(runId, site.replica) }).catch(() => false);
          await placeReplica(site.replica);
        } else if (site === 'critic') {
          void releaseOn(criticQueue).releaseRun({ runId: criticId }).catch(() => false);
          criticQueue = await place(criticId);
        } else if (site === 'actor') {
          // The run's worker is gone (or failed transiently): place the run again; the next
          // worker loads the last checkpoint and the stage resumes from what the ledger holds.
          void releaseOn(queue).releaseRun({ runId }).catch(() => false);
          queue = await place();
          actorHost = null; // the actor's other ranks may have to follow it
        }
      }
    }
  }

  /** The actor's ranks are all on its host: its host learnt again after a move, the ranks elsewhere placed again. */
  const gatherActorRanks = async (): Promise<void> => {
    await learnActorHost();
    for (let k = 1; k < trainers; k++) {
      if (replicaHosts[k] === actorHost) continue;
      void releaseOn(replicaQueues[k]).releaseRun({ runId: rolloutSlot(runId, k) }).catch(() => false);
      await placeReplica(k);
    }
  };
  let actorAttempts = 0;
  /**
   * The actor's training as a data-parallel group (parallel.actor.dp): every rank at once, met at
   * a fresh rendezvous per attempt. A rank whose worker is gone is placed again; a rank that failed
   * because a peer did runs again where it is; every rank restarts from the last checkpoint.
   */
  const trainActorRanks = async (req: () => IterationRequest): Promise<TrainResult & { deviceSeconds: number }> => {
    for (;;) {
      await gatherActorRanks();
      const rendezvous = { name: rendezvousName(workflowInfo().runId, ++actorAttempts), world: trainers, timeoutMs: GANG_TIMEOUT_MS };
      // The first rank to fail cancels the others: a rank waiting at the rendezvous for a lost one stops at once.
      const scope = new CancellationScope();
      const calls = rankSlots.map((slot, k) => scope.run(() => actorRankOn(k === 0 ? queue : replicaQueues[k], heartbeat).trainOnRollouts({
        ...req(), dataParallel: { rank: k, rendezvous }, ...(k > 0 ? { slot } : {}),
      })));
      for (const c of calls) c.catch((err: unknown) => void (isCancellation(err) ? undefined : scope.cancel()));
      const settled = await Promise.allSettled(calls);
      const failed = settled.flatMap((x, k) => (x.status === 'rejected' && !isCancellation(x.reason) ? [{ k, err: x.reason as unknown }] : []));
      // Every rank cancelled and none failed: the run itself is being cancelled.
      const cancelled = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed.length === 0 && cancelled) throw cancelled.reason;
      if (failed.length === 0) {
        storeWaited = 0;
        waiting = null;
        status = 'training';
        const done = settled.map((x) => (x as PromiseFulfilledResult<TrainResult>).value);
        return { ...done[0], deviceSeconds: done.reduce((t, r) => t + r.seconds, 0) };
      }
      const outage = failed.map((f) => storeOutage(f.err)).find((o) => o !== null);
      if (outage && storeWaited < storeBudget) {
        status = 'waiting';
        storeWaited = await waitForStore(outage, storeWaited, storeBudget, (w) => (waiting = w));
        continue;
      }
      const fatal = failed.find((f) => !isPlacementFailure(f.err));
      if (fatal || ++replacements > MAX_REPLACEMENTS) {
        await releaseAll();
        throw (fatal ?? failed[0]).err;
      }
      for (const { k, err } of failed) {
        if (!(err instanceof ActivityFailure && err.cause instanceof TimeoutFailure)) continue;
        if (k === 0) {
          void releaseOn(queue).releaseRun({ runId }).catch(() => false);
          queue = await place();
          actorHost = null;
        } else {
          void releaseOn(replicaQueues[k]).releaseRun({ runId: rolloutSlot(runId, k) }).catch(() => false);
          replicaHosts[k] = null; // placed again (on the actor's host) by gatherActorRanks
        }
      }
    }
  };

  /** A stage's request for the current iteration: the weights as of the last checkpoint, the stages done so far. */
  const requestAt = (state: LoopState | null, refs: Partial<Record<StageName, StageRef>>): IterationRequest => ({
    runId, recipe, config, dataset: s.dataset, iteration: s.iteration, checkpoint: s.lastCheckpoint,
    state, refs: { ...refs }, ...(opts.ownCritic ? { critic: { checkpoint: s.criticCheckpoint ?? null } } : {}),
  });

  /** The policy as of the last checkpoint on the held-out prompts; its metrics join the iteration that produced it. */
  const evaluate = async (): Promise<void> => {
    currentStage = 'eval';
    const req = requestAt(s.state, {});
    const r = await durably('actor', () => computeOn(queue, heartbeat).evaluatePolicy(req));
    const metrics = { ...(r.metrics ?? {}), evalSeconds: r.seconds };
    s.usage = addUsage(s.usage ?? emptyUsage(), { eval: r.seconds });
    s.evaluations = [...(s.evaluations ?? []), { iteration: s.iteration, metrics }].filter((_, i, all) => i === 0 || i >= all.length - 199);
    const last = s.history.at(-1);
    if (last && last.step === s.iteration) Object.assign(last.metrics, metrics);
    const lastValidation = s.validations.at(-1);
    if (lastValidation && lastValidation.step === s.iteration) Object.assign(lastValidation.metrics, metrics);
    currentStage = null;
  };
  if (!input.loop) await evaluate();

  while (s.iteration < t.maxSteps && !stopRequested) {
    status = paused ? 'paused' : 'training';
    await condition(() => !paused || stopRequested);
    if (stopRequested) break;
    status = 'training';
    const refs: Partial<Record<StageName, StageRef>> = {};
    const phase: Record<string, number> = {};
    let state: LoopState | null = s.state;
    let advantages: StageResult | null = null;
    // Device-seconds of the stages split over several workers (their phase seconds are wall time).
    const splitDevice: Record<string, number> = {};
    const request = (): IterationRequest => requestAt(state, refs);
    const call = (site: CallSite, activity: (typeof STAGE_ACTIVITY)[keyof typeof STAGE_ACTIVITY], req: () => IterationRequest): Promise<StageResult> => durably(site, () => {
      const acts = typeof site === 'object' ? computeOn(replicaQueues[site.replica], heartbeat)
        : site === 'actor' ? computeOn(queue, heartbeat) : site === 'critic' ? computeOn(criticQueue, heartbeat) : site === 'anywhere' ? sharedOn(sharedQueue, heartbeat) : control;
      return (acts[activity] as (req: IterationRequest) => Promise<StageResult>)(req());
    });
    /** The stage as `parts` calls at once, each its split, merged into one result (the parts in ledger order). */
    const splitStage = async (name: Exclude<StageName, 'train'>, site: StageSite, parts: number): Promise<StageResult> => {
      const activity = STAGE_ACTIVITY[name];
      const results = await Promise.all(Array.from({ length: parts }, (_, k) => {
        const splitOf = { index: k, of: parts };
        // The rollout replicas: part 0 on the actor's worker, part k on replica k.
        if (site === 'actor' && k > 0) return call({ replica: k }, activity, () => ({ ...request(), split: splitOf, slot: rolloutSlot(runId, k) }));
        return call(site, activity, () => ({ ...request(), split: splitOf }));
      }));
      splitDevice[name] = results.reduce((t, r) => t + r.seconds, 0);
      return control.mergeStageResults({ runId, iteration: s.iteration, stage: name, results });
    };
    const ctx: IterationContext = {
      async stage(name, site) {
        currentStage = name;
        const parts = site === 'actor' && (name === 'generate' || name === 'logprobs') ? rolloutWorkers : name === 'score' ? scoreParts : 1;
        const r = parts > 1 ? await splitStage(name, site, parts) : await call(site, STAGE_ACTIVITY[name], request);
        refs[name] = r.ref;
        phase[`${name}Seconds`] = r.seconds;
        if (r.metrics && name !== 'advantages') Object.assign(phase, r.metrics);
        if (name === 'advantages') {
          advantages = r;
          if (r.state) state = r.state;
        }
        return r;
      },
      async train() {
        currentStage = 'train';
        // The stages' measurements travel with the train request, which writes them to the metrics
        // ledger before its checkpoint commits (an argument, not a command: replay is unchanged).
        const trainRequest = (): IterationRequest => ({ ...request(), iterationMetrics: { ...((advantages as StageResult | null)?.metrics ?? {}), ...phase } });
        const trainActor = async (): Promise<TrainResult> => {
          if (trainers === 1) return durably('actor', () => computeOn(queue, heartbeat).trainOnRollouts(trainRequest()));
          const { deviceSeconds, ...r } = await trainActorRanks(trainRequest);
          splitDevice.train = deviceSeconds; // every rank held a device for its share
          return r;
        };
        if (!opts.ownCritic) {
          const r = await trainActor();
          phase.trainSeconds = r.seconds;
          return r;
        }
        // Actor and critic train in parallel, each on its own worker, each re-placed on its own.
        const [r, c] = await Promise.all([
          trainActor(),
          durably('critic', () => computeOn(criticQueue, heartbeat).trainCritic(request())),
        ]);
        s.criticCheckpoint = c.checkpoint;
        Object.assign(phase, { trainSeconds: r.seconds, criticTrainSeconds: c.seconds, valueLoss: c.valueLoss });
        return r;
      },
    };
    const trained = await iterate(ctx);
    const adv = advantages as StageResult | null;
    const metrics = { ...(adv?.metrics ?? {}), ...trained.metrics, ...phase };
    const summary: StepSummary = { step: s.iteration + 1, loss: trained.loss, lr: trained.lr, gradNorm: trained.gradNorm, tokens: trained.tokens, metrics };
    s.history = [...s.history, summary].slice(-200);
    // One per iteration: the first (the initial policy's rollouts) and the latest 199 are kept.
    if (adv?.headline) s.validations = [...s.validations, { step: s.iteration + 1, loss: trained.loss, metrics, headline: adv.headline }].filter((_, i, all) => i === 0 || i >= all.length - 199);
    s.lastCheckpoint = trained.checkpoint;
    s.state = state;
    s.iteration += 1;
    s.tokensSeen += trained.tokens;
    s.trainSeconds += trained.seconds;
    // Each stage's seconds on the device it held (an own-worker critic's training on its own).
    const stageSeconds = { ...Object.fromEntries(Object.entries(phase).filter(([k]) => k.endsWith('Seconds')).map(([k, v]) => [k.replace(/Seconds$/, ''), v])), ...splitDevice };
    const over = charge(s, stageSeconds, { tokens: trained.tokens }, config.budget?.maxDeviceHours);
    if (over) [paused, pauseReason] = [true, over];
    currentStage = null;
    if (s.iteration === t.maxSteps || (t.valEvery > 0 && s.iteration % t.valEvery === 0)) await evaluate();
    if (s.iteration % t.continueAsNewEvery === 0 && s.iteration < t.maxSteps && !stopRequested) {
      await continueAsNew<(i: RunInput & { loop?: LoopCarried | null }) => Promise<RunResult>>({ ...input, loop: s });
    }
  }

  await releaseAll();
  status = stopRequested ? 'stopped' : 'exporting';
  if (!stopRequested && s.lastCheckpoint) exportUri = await control.exportModel({ runId, checkpoint: s.lastCheckpoint });
  status = stopRequested ? 'stopped' : 'completed';
  return { runId, status, step: s.iteration, lastCheckpoint: s.lastCheckpoint, exportUri, validations: s.validations, evaluations: s.evaluations };
}
