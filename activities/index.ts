/**
 * The activities, built by a factory that receives their dependencies (the store, this worker's
 * own task queue, its resident models), so that tests can pass fakes. Workflows import the
 * `Activities` type only. Every activity serves every recipe: each looks its recipe up in RECIPES.
 */
import os from 'node:os';
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { RunStorePort } from '../store/run-store-port.js';
import { prepareDataset } from './dataset.js';
import { classified } from './errors.js';
import { gangChunk } from './gang.js';
import { rankSlotPrefix } from '../workflows/gang-names.js';
import type { GangChunkRequest, GangChunkResult } from './gang.js';
import { keepAlive } from './heartbeat.js';
import { precompute } from './precompute.js';
import { ResidentJudges, scoreResponses } from './score.js';
import type { Drain } from './drain.js';
import { ResidentRuns, trainChunk } from './train.js';
import { generateRollouts } from './online/generate.js';
import { computeAdvantages, computeLogprobs, computeValues, scoreRollouts } from './online/stages.js';
import { trainCritic, trainOnRollouts } from './online/train.js';
import { evaluatePolicy } from './online/evaluate.js';
import { mergeStageResults } from './online/split.js';
import type { CriticTrainResult, IterationRequest, StageName, StageResult, TrainResult } from './online/types.js';
import { beginPipeline, finishPipeline, planPipelineStage, recordPipeline } from './pipeline/plan.js';
import type { StageSettings } from './pipeline/plan.js';
import { mergeDataShards, runDataShard } from './pipeline/data-stage.js';
import { ResidentPolicies } from './pipeline/policies.js';
import type { DataShardResult, DataStageResult, PipelineInput, PipelineRecord, StagePlan } from './pipeline/types.js';
import type { DataTaskName, StageOutputs } from '../algorithms/pipelines/index.js';
import type {
  CheckpointRef, ChunkRequest, ChunkResult, DatasetRef, PrecomputedRef, RecipeConfig, RecipeName, ScoreRequest, ScoreResult,
} from './types.js';

export interface ActivityDeps {
  store: RunStorePort;
  /** The task queue only this worker listens on (model residency). */
  workerQueue: string;
  runs?: ResidentRuns;
  judges?: ResidentJudges;
  /** Causal LMs the pipeline data stages sample and score with, by folder. */
  policies?: ResidentPolicies;
  /** Runs this worker trains at once (its slots). Default 1. */
  slots?: number;
  /** A slot whose run has not trained for this long is taken back (a terminated run never releases it). Default 2 minutes. */
  slotIdleMs?: number;
  /** Set when the worker is being taken away: no new runs; chunks stop at the next step and commit. */
  drain?: Drain;
  /** Whether a workflow (the owner of a slot) has closed (asked of Temporal by default: workflowClosed). */
  isWorkflowClosed?: (workflowId: string) => Promise<boolean>;
  /** The machine whose shared memory this worker's gang ranks use (ALIGN_WORKER_HOST, else the host name). */
  host?: string;
}

/** The workflow that scheduled the current activity; undefined outside one (unit tests). */
function callingWorkflowId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.workflowId;
  } catch {
    return undefined;
  }
}

/**
 * Whether a run's workflow has closed, from the worker's own client: a terminated run never
 * releases its slot, and must not hold it until the idle timeout. Unknown (Temporal unreachable)
 * counts as open, so a slot is only ever freed for a run that is certainly over.
 */
export async function workflowClosed(workflowId: string): Promise<boolean> {
  try {
    return (await Context.current().client.workflow.getHandle(workflowId).describe()).status.name !== 'RUNNING';
  } catch (e) {
    return e instanceof WorkflowNotFoundError;
  }
}

const hostOf = (deps: ActivityDeps): string => deps.host ?? process.env.ALIGN_WORKER_HOST ?? os.hostname();

/** No slot is free on this worker: retryable, so the placement is offered again (to any worker) after a backoff. */
export class NoFreeSlotError extends Error {
  override name = 'NoFreeSlotError';
}

export function createActivities(deps: ActivityDeps) {
  const runs = deps.runs ?? new ResidentRuns();
  const judges = deps.judges ?? new ResidentJudges();
  const policies = deps.policies ?? new ResidentPolicies();
  return classified({
    async prepareDataset(args: { runId: string; recipe: RecipeName; config: RecipeConfig }): Promise<DatasetRef> {
      return prepareDataset(deps.store, args);
    },
    /**
     * Runs on the shared compute queue: a worker with a free slot takes the run and hosts it from
     * now on; a full one says so, and the placement is retried after a backoff (waiting for
     * capacity is a status of the run, never its failure).
     */
    async placeRun(args: { runId: string; owner?: string; gang?: string; host?: string; apartFrom?: string[] }): Promise<string> {
      const slots = deps.slots ?? 1;
      if (deps.drain?.requested) throw new NoFreeSlotError(`worker ${deps.workerQueue} is shutting down (${deps.drain.reason})`);
      // The ranks of a gang need processes of their own: two on one engine would queue their
      // collectives behind each other on one stream and wait forever.
      const sibling = args.gang ? runs.placedRuns.find((p) => p.runId !== args.runId && p.runId.startsWith(rankSlotPrefix(args.gang!))) : undefined;
      if (sibling) throw new NoFreeSlotError(`worker ${deps.workerQueue} already hosts ${sibling.runId} of the same gang`);
      // The same for the ranks of a data-parallel actor (the actor's slot and its replicas').
      const peer = args.apartFrom?.find((id) => id !== args.runId && runs.placedRuns.some((p) => p.runId === id));
      if (peer) throw new NoFreeSlotError(`worker ${deps.workerQueue} already hosts ${peer}, another rank of the same actor`);
      // A shared-memory gang lives on one host: the ranks after the first go where the first is.
      if (args.host && args.host !== hostOf(deps)) throw new NoFreeSlotError(`worker ${deps.workerQueue} is on host ${hostOf(deps)}; the gang's ranks are on ${args.host}`);
      const idleMs = deps.slotIdleMs ?? 120_000;
      // The workflow that places the run owns the slot: an online run's critic is placed by the run's workflow.
      const owner = args.owner ?? callingWorkflowId() ?? args.runId;
      if (runs.place(args.runId, slots, idleMs, Date.now(), owner)) return deps.workerQueue;
      // Full: the slots of runs whose owning workflows have closed without releasing them are free now.
      const isClosed = deps.isWorkflowClosed ?? workflowClosed;
      const closed = (await Promise.all(runs.placedRuns.map(async (p) => ((await isClosed(p.owner)) ? p.runId : null)))).filter((id) => id !== null);
      for (const id of closed) runs.release(id);
      if (closed.length > 0 && runs.place(args.runId, slots, idleMs, Date.now(), owner)) return deps.workerQueue;
      throw new NoFreeSlotError(`worker ${deps.workerQueue} has no free slot (${runs.slotsInUse} of ${slots} in use, by ${runs.placedRuns.map((p) => p.runId).join(', ')})`);
    },
    /** Inputs the recipe computes once (reference log-probs, teacher top-K); null when it has none. */
    async precompute(args: { runId: string; recipe: RecipeName; config: RecipeConfig; dataset: DatasetRef }): Promise<PrecomputedRef | null> {
      return precompute(deps.store, args);
    },
    async trainChunk(req: ChunkRequest): Promise<ChunkResult> {
      return trainChunk(deps.store, runs, req, deps.drain);
    },
    /** The host this worker's shared memory belongs to (where a gang's other ranks must go). */
    async workerHost(): Promise<string> {
      return hostOf(deps);
    },
    /** One rank's part of a gang run's chunk (config.parallel); every rank runs it at once. */
    async gangChunk(req: GangChunkRequest): Promise<GangChunkResult> {
      return gangChunk(deps.store, runs, req);
    },
    /** The run ended, failed or moved: free its model, optimizer and open data on this worker. */
    async releaseRun(args: { runId: string }): Promise<boolean> {
      const held = runs.get(args.runId) !== undefined || runs.getLoop(args.runId) !== undefined;
      runs.release(args.runId);
      return held;
    },
    /** The run has ended (completed, stopped or failed): remove its uploads that never committed. */
    async cleanRun(args: { runId: string }): Promise<number[]> {
      return deps.store.cleanUncommitted(args.runId);
    },
    async scoreResponses(req: ScoreRequest): Promise<ScoreResult> {
      return scoreResponses(deps.store, judges, req);
    },
    // The experience loop's stages (workflows/online.ts), each idempotent per (run, iteration, stage).
    async generateRollouts(req: IterationRequest): Promise<StageResult> {
      return generateRollouts(deps.store, runs, req, deps.workerQueue);
    },
    async scoreRollouts(req: IterationRequest): Promise<StageResult> {
      return scoreRollouts(deps.store, judges, req, deps.workerQueue);
    },
    async computeLogprobs(req: IterationRequest): Promise<StageResult> {
      return computeLogprobs(deps.store, runs, req, deps.workerQueue);
    },
    async computeValues(req: IterationRequest): Promise<StageResult> {
      return computeValues(deps.store, runs, req, deps.workerQueue);
    },
    async computeAdvantages(req: IterationRequest): Promise<StageResult> {
      return computeAdvantages(deps.store, req, deps.workerQueue);
    },
    /** One stage result from the parts its splits wrote (config.parallel): on the control queue, store-free. */
    async mergeStageResults(args: { runId: string; iteration: number; stage: StageName; results: StageResult[] }): Promise<StageResult> {
      return mergeStageResults(args.runId, args.iteration, args.stage, args.results);
    },
    async trainOnRollouts(req: IterationRequest): Promise<TrainResult> {
      return trainOnRollouts(deps.store, runs, req);
    },
    /** The policy after req.iteration iterations on held-out prompts, scored (before training, every trainer.valEvery, at the end). */
    async evaluatePolicy(req: IterationRequest): Promise<StageResult> {
      return evaluatePolicy(deps.store, runs, judges, req, deps.workerQueue);
    },
    /** PPO with ppo.criticWorker = own: the critic's training on its own worker. */
    async trainCritic(req: IterationRequest): Promise<CriticTrainResult> {
      return trainCritic(deps.store, runs, req);
    },
    async exportModel(args: { runId: string; checkpoint: CheckpointRef }): Promise<string> {
      return deps.store.exportCheckpoint(args.runId, args.checkpoint);
    },
    // Pipelines (workflows/pipeline.ts): the parent's bookkeeping on the control queue, and the
    // data stages' shards (workflows/data-stage.ts) on any compute worker.
    async beginPipeline(input: PipelineInput & { pipelineId: string; attempt: number }): Promise<PipelineRecord> {
      return beginPipeline(deps.store, input);
    },
    async planPipelineStage(args: { record: PipelineRecord; stage: string; outputs: StageOutputs; settings?: StageSettings }): Promise<StagePlan> {
      return planPipelineStage(deps.store, args);
    },
    async recordPipeline(args: { record: PipelineRecord }): Promise<void> {
      return recordPipeline(deps.store, args.record);
    },
    async finishPipeline(args: { record: PipelineRecord }): Promise<PipelineRecord> {
      return finishPipeline(deps.store, args.record);
    },
    async runDataShard(args: { runId: string; task: DataTaskName; args: Record<string, unknown>; shard: number; shards: number; previousRuns?: string[] }): Promise<DataShardResult> {
      // Loading and sampling can outlast the heartbeat timeout: keep heartbeating throughout.
      return keepAlive(() => runDataShard(deps.store, policies, judges, args));
    },
    async mergeDataShards(args: { runId: string; task: DataTaskName; args: Record<string, unknown>; parts: DataShardResult[] }): Promise<DataStageResult> {
      return mergeDataShards(deps.store, args);
    },
  });
}

export type Activities = ReturnType<typeof createActivities>;
