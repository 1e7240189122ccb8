/**
 * The messages between the pipeline workflows (workflows/pipeline.ts, workflows/data-stage.ts)
 * and their activities: small JSON, URIs for everything large.
 */
import type { PipelineStart, StageOutput } from '../../algorithms/pipelines/index.js';
import type { DataTaskName } from '../../algorithms/pipelines/types.js';
import type { Queues, RunInput } from '../types.js';

export interface PipelineInput {
  /** Set by the workflow: its own id. */
  workflowId?: string;
  /** Default: the workflow id (a scheduled round's, with the schedule's time appended), made store-safe. */
  pipelineId?: string | null;
  pipeline: string;
  /** Parsed and validated by the pipeline's schema (the CLI, the API and schedules parse before starting). */
  config: Record<string, unknown>;
  /** The schedule that started this round: its lineage names the model the round starts from. */
  schedule?: string | null;
  /** 0 for the first execution; n for the n-th `align pipeline resume`. */
  attempt?: number;
  queues?: Queues | null;
  heartbeatSeconds?: number;
  storeRetrySeconds?: number;
  /** Times a stage that failed for a retryable reason runs again before the pipeline fails. Default 2 (workflows/pipeline.ts). */
  stageRetries?: number;
}

export type StageState = 'pending' | 'running' | 'completed' | 'failed';

/** One stage as the parent records it: the child that ran it, its inputs and its output. */
export interface StageRecord {
  name: string;
  kind: 'run' | 'data';
  /** The recipe (run stages) or the task (data stages). */
  what: string;
  state: StageState;
  /** The child workflow (a run id: `align status <runId>` shows it). */
  runId: string | null;
  /** Earlier child runs of this stage that failed (a resumed pipeline starts the stage again). */
  failedRuns: string[];
  /** The checkpoint a resumed stage continued from (the failed run's newest valid one). */
  resumedFrom?: { runId: string; step: number } | null;
  /** The URIs this stage read that earlier stages wrote (lineage). */
  inputs: string[];
  output: StageOutput | null;
  error?: string | null;
  /** The pipeline execution (attempt) that completed it. */
  attempt: number | null;
}

export type PipelineState = 'running' | 'completed' | 'failed';

/** The pipeline's record, kept in the store at pipelines/<id>/record.json after every stage. */
export interface PipelineRecord {
  pipelineId: string;
  /** The Temporal workflow id (a scheduled round's carries its time, which the pipeline id has made store-safe). */
  workflowId: string;
  pipeline: string;
  config: Record<string, unknown>;
  start: PipelineStart;
  schedule: string | null;
  attempt: number;
  state: PipelineState;
  stages: StageRecord[];
  /** The model the pipeline produced (what the next scheduled round starts from). */
  output: { model: string } | null;
}

/** What the parent starts for a stage: a child workflow and its input. */
export type StagePlan =
  | { kind: 'run'; workflowType: string; runId: string; recipe: string; input: RunInput; inputs: string[]; resumedFrom: { runId: string; step: number } | null }
  | { kind: 'data'; workflowType: 'dataStageWorkflow'; runId: string; task: DataTaskName; input: DataStageInput; inputs: string[]; resumedFrom: null };

export interface DataStageInput {
  runId: string;
  task: DataTaskName;
  args: Record<string, unknown>;
  shards: number;
  /** Earlier runs of the same stage (failed, then retried or resumed): their committed shards are taken over, not redone. */
  previousRuns?: string[];
  queues?: Queues | null;
  heartbeatSeconds?: number;
  /** How long a shard (and the join) waits out a store outage before the stage fails (RunInput.storeRetrySeconds). */
  storeRetrySeconds?: number;
}

export interface DataShardResult {
  shard: number;
  records: number;
  /** Sums and counts the task's metrics are made of (merged over shards, then divided). */
  sums: Record<string, number>;
  seconds: number;
}

export interface DataStageResult {
  runId: string;
  /** The stage's JSONL (every shard's records, in shard order). */
  uri: string;
  records: number;
  metrics: Record<string, number>;
  summary: string;
}
