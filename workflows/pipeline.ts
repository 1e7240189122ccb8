/**
 * A pipeline as a parent workflow (algorithms/pipelines/: SFT → RM → PPO, SteerLM, SteerLM 2.0,
 * CAI, iterative DPO, SPIN, rejection-sampling rounds): each stage is a child workflow, a run of a
 * recipe or a sharded data stage, so each stage is durable and resumable on its own. The parent
 * plans a stage from the outputs of the stages before it (a control activity, so the plan is in
 * the history), starts its child, records the child's output and lineage in the store
 * (pipelines/<id>/record.json), and moves on. A stage whose run fails for a reason another attempt
 * may not meet is run again (STAGE_RETRIES), resumed from its newest checkpoint; one that fails for
 * good (bad data, a NaN loss, a terminate) fails the pipeline with the stage named, and `align
 * pipeline resume` starts the pipeline again with the same id, which skips the completed stages and
 * resumes the failed one from its newest checkpoint.
 *
 * Deterministic code only: no I/O, no clocks, no tensors.
 */
import { ApplicationFailure, CancellationScope, CancelledFailure, defineQuery, executeChild, setHandler, sleep, TerminatedFailure, workflowInfo } from '@temporalio/workflow';
import type { DataStageResult, PipelineInput, PipelineRecord, StagePlan } from '../activities/pipeline/types.js';
import type { StageOutput } from '../algorithms/pipelines/types.js';
import type { RunResult } from '../activities/types.js';
import { CONTROL_QUEUE, controlOn } from './training.js';

export interface PipelineProgress extends PipelineRecord {
  /** The stage running now; null between stages and at the end. */
  current: string | null;
}

export const pipelineQuery = defineQuery<PipelineProgress>('pipeline');

/**
 * Times a stage whose run failed for a reason another attempt may not meet (its workers kept
 * dying, a store outage outlasted the run's wait) is started again, from its newest checkpoint,
 * before the pipeline fails (PipelineInput.stageRetries).
 */
export const STAGE_RETRIES = 2;
/** Seconds before the n-th retry of a stage: n × this. */
const STAGE_RETRY_PAUSE_SECONDS = 5;

/** Whether another run of the stage might succeed: not after bad data or config, a NaN loss, a terminate or a cancel. */
function retryable(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof TerminatedFailure || e instanceof CancelledFailure) return false;
    if (e instanceof ApplicationFailure && e.nonRetryable) return false;
  }
  return true;
}

/** Workflow ids made store-safe (a scheduled round's id carries its time, with ':'). */
export const pipelineIdOf = (workflowId: string): string => workflowId.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100);

/** The stage's effect from a run's result: its headline before → after, and the held-out policy's metrics. */
function runOutput(r: RunResult): StageOutput {
  const first = r.validations[0], last = r.validations.at(-1);
  const metrics: Record<string, number> = {};
  let summary = `${r.step} steps`;
  if (first && last) {
    const m = first.headline.metric;
    metrics[`${m}Before`] = first.headline.value;
    metrics[`${m}After`] = last.headline.value;
    summary = `${m} ${first.headline.value.toFixed(3)} → ${last.headline.value.toFixed(3)}`;
  }
  // Online runs: the policy on held-out prompts before the first iteration and after the last.
  const e0 = r.evaluations?.[0], e1 = r.evaluations?.at(-1);
  if (e0 && e1 && e0 !== e1 && e0.metrics.evalReward !== undefined && e1.metrics.evalReward !== undefined) {
    metrics.heldOutRewardBefore = e0.metrics.evalReward;
    metrics.heldOutRewardAfter = e1.metrics.evalReward;
    summary += `; held-out reward ${e0.metrics.evalReward.toFixed(3)} → ${e1.metrics.evalReward.toFixed(3)}`;
  }
  return { model: r.exportUri ?? undefined, metrics, summary };
}

/**
 * What the failing stage itself said: the innermost application error of the chain (our typed
 * errors name the file, the field, the step), not the wrappers' "Activity task failed".
 */
function causeOf(err: unknown): string {
  let message = (err as Error).message;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof ApplicationFailure && e.message) message = e.message;
    else if (e instanceof TerminatedFailure) message = `its run was terminated${e.message ? ` (${e.message})` : ''}`;
  }
  return message;
}

const dataOutput = (r: DataStageResult): StageOutput => ({ data: r.uri, records: r.records, metrics: r.metrics, summary: r.summary });

export async function pipelineWorkflow(input: PipelineInput): Promise<PipelineRecord> {
  const pipelineId = input.pipelineId ?? pipelineIdOf(workflowInfo().workflowId);
  const control = controlOn(input.queues?.control ?? CONTROL_QUEUE);
  const attempt = input.attempt ?? 0;
  let current: string | null = null;
  const record: PipelineRecord = await control.beginPipeline({ ...input, pipelineId, attempt, workflowId: workflowInfo().workflowId });
  setHandler(pipelineQuery, (): PipelineProgress => ({ ...record, current }));

  for (const stage of record.stages) {
    if (stage.state === 'completed') continue;
    current = stage.name;
    /** The stage (and so the pipeline) has failed for good: recorded before the workflow fails. */
    const failed = () => CancellationScope.nonCancellable(async () => {
      // Not cancellable: a cancelled pipeline records its stage as failed too (not left "running").
      stage.state = 'failed';
      record.state = 'failed';
      current = null;
      await control.recordPipeline({ record });
    });
    for (let retries = 0; stage.state !== 'completed'; retries++) {
      const outputs = Object.fromEntries(record.stages.filter((s) => s.output).map((s) => [s.name, s.output!]));
      let plan: StagePlan;
      try {
        plan = await control.planPipelineStage({
          record, stage: stage.name, outputs,
          settings: { queues: input.queues ?? null, heartbeatSeconds: input.heartbeatSeconds, storeRetrySeconds: input.storeRetrySeconds },
        });
      } catch (err) {
        stage.error = causeOf(err);
        await failed();
        throw err;
      }
      Object.assign(stage, { state: 'running', runId: plan.runId, inputs: plan.inputs, resumedFrom: plan.resumedFrom, error: stage.error ?? null });
      await control.recordPipeline({ record });
      try {
        const common = { workflowId: plan.runId, taskQueue: input.queues?.control ?? CONTROL_QUEUE };
        if (plan.kind === 'run') {
          const r = await executeChild(plan.workflowType, { ...common, args: [plan.input], memo: { recipe: plan.recipe, parentRunId: plan.input.parentRunId ?? null, pipelineId } }) as RunResult;
          if (r.status === 'stopped') {
            // Stopped by a person (`align stop`): it checkpointed but exported nothing, so the stage is
            // not done; resume continues it from that checkpoint.
            throw ApplicationFailure.create({ type: 'StageStopped', nonRetryable: true, message: `its run was stopped at step ${r.step}${r.lastCheckpoint ? ` (checkpoint at step ${r.lastCheckpoint.step})` : ''}` });
          }
          stage.output = runOutput(r);
        } else {
          const r = await executeChild(plan.workflowType, { ...common, args: [plan.input], memo: { task: plan.task, pipelineId } });
          stage.output = dataOutput(r as DataStageResult);
        }
        stage.state = 'completed';
        stage.attempt = attempt;
        stage.error = null;
      } catch (err) {
        stage.error = causeOf(err);
        if (retryable(err) && retries < (input.stageRetries ?? STAGE_RETRIES)) {
          // Run the stage again as a new run, resumed from the failed one's newest checkpoint.
          stage.state = 'pending';
          stage.failedRuns = [...stage.failedRuns, plan.runId];
          stage.runId = null;
          await control.recordPipeline({ record });
          await sleep((retries + 1) * STAGE_RETRY_PAUSE_SECONDS * 1000);
          continue;
        }
        await failed();
        throw ApplicationFailure.create({
          type: 'PipelineStageFailed', nonRetryable: true, cause: err as Error,
          message: `pipeline ${pipelineId}: stage ${stage.name} (${stage.what}, run ${plan.runId}) failed: ${stage.error}; after fixing the cause, continue with: align pipeline resume ${pipelineId}`,
        });
      }
    }
    current = null;
    await control.recordPipeline({ record });
  }
  record.state = 'completed';
  return control.finishPipeline({ record });
}
