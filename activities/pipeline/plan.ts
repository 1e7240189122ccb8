/**
 * The pipeline parent's light activities (control queue): begin (the start model, the stages, a
 * resumed pipeline's completed stages from its record), plan a stage (its child workflow and
 * validated input), record the pipeline after every stage, and finish (the output model, appended
 * to the schedule's lineage when a schedule started it). The record and the lineage live in the
 * store: pipelines/<id>/record.json and schedules/<name>/rounds/<pipeline id>.json (one object per
 * completed round, written only if absent: rounds that finish together never overwrite each other).
 */
import { getPipeline } from '../../algorithms/pipelines/index.js';
import type { StageOutputs } from '../../algorithms/pipelines/index.js';
import { ConfigError } from '../../algorithms/errors.js';
import { getRecipe, parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { RecipeName } from '../../algorithms/recipes/index.js';
import { latestValidCheckpoint, verifyCheckpoint } from '../../store/checkpoints.js';
import type { ArtifactStore } from '../../store/index.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import type { RunInput } from '../types.js';
import { DATA_TASKS } from './tasks.js';
import type { PipelineInput, PipelineRecord, StagePlan, StageRecord } from './types.js';

export const pipelineRecordKey = (pipelineId: string): string => `pipelines/${pipelineId}/record.json`;
const scheduleRoundsPrefix = (schedule: string): string => `schedules/${schedule}/rounds/`;
export const scheduleRoundKey = (schedule: string, pipelineId: string): string => `${scheduleRoundsPrefix(schedule)}${pipelineId}.json`;

/** One completed round of a schedule: the pipeline that ran it and the model it produced. */
export interface ScheduledRound {
  round: number;
  pipelineId: string;
  model: string;
  finishedAt: string;
}

/** A schedule's lineage: its completed rounds, oldest first (by round, then finish time). */
export async function readLineage(store: ArtifactStore, schedule: string): Promise<ScheduledRound[]> {
  const objects = await store.list(scheduleRoundsPrefix(schedule));
  const rounds = await Promise.all(objects.filter((o) => o.key.endsWith('.json')).map(async (o) => JSON.parse((await store.get(o.key)).toString('utf8')) as ScheduledRound));
  return rounds.sort((a, b) => a.round - b.round || a.finishedAt.localeCompare(b.finishedAt));
}

/** The workflow a recipe runs as: every offline recipe is the one training loop, each online recipe a loop of its own. */
export const workflowTypeOf = (recipe: RecipeName): string => (getRecipe(recipe).kind === 'offline' ? 'trainingWorkflow' : `${recipe}Workflow`);

/** Most shards of one data stage: its workflow history holds a few events per shard (Temporal caps a history at 50k). */
export const MAX_DATA_SHARDS = 4000;

export const stageRunId = (pipelineId: string, stage: string, failedBefore: number): string =>
  `${pipelineId}.${stage}${failedBefore > 0 ? `.r${failedBefore}` : ''}`;

export async function beginPipeline(store: RunStorePort, input: PipelineInput & { pipelineId: string; attempt: number }): Promise<PipelineRecord> {
  const def = getPipeline(input.pipeline);
  const key = pipelineRecordKey(input.pipelineId);
  const previous = await store.getJson<PipelineRecord>(key);
  if (previous && input.attempt > 0) {
    // A resumed pipeline: completed stages keep their outputs; a stage that failed (or was running
    // when the pipeline ended) starts again, from its failed run's newest checkpoint where it has one.
    const stages = previous.stages.map((s): StageRecord => (s.state === 'completed' ? s : {
      ...s, state: 'pending', failedRuns: s.runId ? [...s.failedRuns, s.runId] : s.failedRuns, runId: null, error: null,
    }));
    const record: PipelineRecord = { ...previous, attempt: input.attempt, state: 'running', stages };
    await store.putJson(key, record);
    return record;
  }
  if (previous && previous.state === 'running' && previous.attempt === input.attempt) return previous; // this activity retried
  if (previous) throw new ConfigError(`pipeline ${input.pipelineId} already has a record in the store (${previous.state}); pipeline ids are never reused`);
  let start = { model: input.config.model as string, round: 1 };
  if (input.schedule) {
    const last = (await readLineage(store.store, input.schedule)).at(-1);
    if (last) start = { model: last.model, round: last.round + 1 };
  }
  const names = def.stages(input.config);
  const stages = names.map((name): StageRecord => {
    const spec = def.stage(name, input.config, fakeOutputs(names, start.model), start);
    return { name, kind: spec.kind, what: spec.kind === 'run' ? spec.recipe : spec.task, state: 'pending', runId: null, failedRuns: [], inputs: [], output: null, attempt: null };
  });
  const record: PipelineRecord = {
    pipelineId: input.pipelineId, workflowId: input.workflowId ?? input.pipelineId, pipeline: def.name, config: input.config, start, schedule: input.schedule ?? null,
    attempt: input.attempt, state: 'running', stages, output: null,
  };
  await store.putJson(key, record);
  return record;
}

/** Outputs for planning before anything ran: every stage "produced" the start model and a placeholder file. */
export function fakeOutputs(stages: readonly string[], model: string): StageOutputs {
  return Object.fromEntries(stages.map((s) => [s, { model, data: `pending-output-of-${s}.jsonl`, metrics: {}, summary: '' }]));
}

/** The fleet settings a pipeline passes on to its stages' runs. */
export type StageSettings = Pick<PipelineInput, 'queues' | 'heartbeatSeconds' | 'storeRetrySeconds'>;

export async function planPipelineStage(
  store: RunStorePort, args: { record: PipelineRecord; stage: string; outputs: StageOutputs; settings?: StageSettings },
): Promise<StagePlan> {
  const { record, stage, outputs } = args;
  const settings = args.settings ?? {};
  const def = getPipeline(record.pipeline);
  const st = record.stages.find((s) => s.name === stage);
  if (!st) throw new ConfigError(`pipeline ${record.pipelineId} has no stage "${stage}"`);
  const spec = def.stage(stage, record.config, outputs, record.start);
  const runId = stageRunId(record.pipelineId, stage, st.failedRuns.length);
  const text = JSON.stringify(spec);
  const inputs = [...new Set(Object.values(outputs).flatMap((o) => [o.model, o.data]).filter((u): u is string => !!u && text.includes(JSON.stringify(u))))];
  const fleet = {
    ...(settings.queues ? { queues: settings.queues } : {}),
    ...(settings.heartbeatSeconds !== undefined ? { heartbeatSeconds: settings.heartbeatSeconds } : {}),
    ...(settings.storeRetrySeconds !== undefined ? { storeRetrySeconds: settings.storeRetrySeconds } : {}),
  };
  if (spec.kind === 'data') {
    const task = DATA_TASKS[spec.task];
    const shards = spec.shards > 0 ? spec.shards : await task.shards!({ store }, spec.args);
    if (shards > MAX_DATA_SHARDS) {
      throw new ConfigError(`pipeline stage "${stage}" (${spec.task}) would run ${shards} shards; at most ${MAX_DATA_SHARDS} (each is a few events of one workflow history): put more records in each shard (its shardPrompts or shardRecords setting)`);
    }
    return { kind: 'data', workflowType: 'dataStageWorkflow', runId, task: spec.task, inputs, resumedFrom: null, input: { runId, task: spec.task, args: spec.args, shards, previousRuns: st.failedRuns, ...fleet } };
  }
  const config = parseRecipeConfig(spec.recipe, spec.config);
  const input: RunInput = { runId, recipe: spec.recipe, config, ...fleet };
  let resumedFrom: { runId: string; step: number } | null = null;
  // The stage failed before: continue from the newest valid checkpoint of its failed runs, newest
  // run first (a run that failed before its first checkpoint must not send the stage back to step 0).
  for (const failed of [...st.failedRuns].reverse()) {
    const { checkpoint } = await latestValidCheckpoint(store.store, failed);
    if (!checkpoint) continue;
    input.resumeFrom = checkpoint.ref;
    input.parentRunId = failed;
    resumedFrom = { runId: failed, step: checkpoint.ref.step };
    const critic = await verifyCheckpoint(store.store, `${failed}-critic`, checkpoint.ref.step).then((c) => c.ref, () => null);
    if (critic) input.resumeCritic = critic;
    break;
  }
  return { kind: 'run', workflowType: workflowTypeOf(spec.recipe), runId, recipe: spec.recipe, input, inputs, resumedFrom };
}

export async function recordPipeline(store: RunStorePort, record: PipelineRecord): Promise<void> {
  await store.putJson(pipelineRecordKey(record.pipelineId), record);
}

export async function finishPipeline(store: RunStorePort, record: PipelineRecord): Promise<PipelineRecord> {
  const def = getPipeline(record.pipeline);
  const outputs = Object.fromEntries(record.stages.filter((s) => s.output).map((s) => [s.name, s.output!]));
  const done: PipelineRecord = { ...record, state: 'completed', output: def.output(record.config, outputs) };
  await store.putJson(pipelineRecordKey(record.pipelineId), done);
  if (record.schedule) {
    // Idempotent: a retried finish finds its round written and leaves it.
    const round: ScheduledRound = { round: record.start.round, pipelineId: record.pipelineId, model: done.output!.model, finishedAt: new Date().toISOString() };
    await store.store.putIfAbsent(scheduleRoundKey(record.schedule, record.pipelineId), Buffer.from(JSON.stringify(round), 'utf8'));
  }
  return done;
}
