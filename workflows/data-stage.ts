/**
 * A pipeline's data stage as a workflow of its own (a child of the pipeline): the task runs in
 * shards, each an activity on any compute worker that writes its part to the store and returns
 * its counts, so that a lost worker costs only the shard it held (the next attempt finds the
 * committed parts and skips them). The parts are then joined into the stage's JSONL.
 *
 * Deterministic code only: no I/O, no clocks, no tensors.
 */
import { setHandler } from '@temporalio/workflow';
import type { DataShardResult, DataStageInput, DataStageResult } from '../activities/pipeline/types.js';
import type { Progress } from '../activities/types.js';
import {
  COMPUTE_QUEUE, CONTROL_QUEUE, controlOn, DEFAULT_HEARTBEAT_SECONDS, isPlacementFailure, MAX_REPLACEMENTS, progressQuery, sharedOn,
  STORE_RETRY_SECONDS, storeOutage, waitForStore,
} from './training.js';

export async function dataStageWorkflow(input: DataStageInput): Promise<DataStageResult> {
  const heartbeat = input.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
  const control = controlOn(input.queues?.control ?? CONTROL_QUEUE);
  const compute = sharedOn(input.queues?.compute ?? COMPUTE_QUEUE, heartbeat);
  const storeBudget = input.storeRetrySeconds ?? STORE_RETRY_SECONDS;
  let done = 0;
  let status: Progress['status'] = 'training';
  // Shards waiting out a store outage now, and what the latest of them waits for.
  let waitingFor = 0;
  let waiting: string | null = null;
  // `align status` on a data stage: shards done of shards, as a run's steps.
  setHandler(progressQuery, (): Progress => ({
    runId: input.runId, recipe: input.task as never, status: waitingFor > 0 ? 'waiting' : status, waiting: waitingFor > 0 ? waiting : null, step: done, maxSteps: input.shards, lastLoss: null, lastValidation: null,
    lastCheckpoint: null, tokensPerSecond: null, recent: [], parentRunId: null, exportUri: null, stage: input.task,
  }));

  /**
   * Runs `fn` until it succeeds: a store outage is waited out (with backoff, up to the stage's
   * budget, on any worker), a lost worker or a transient failure offers the work again.
   */
  const durably = async <T>(fn: () => Promise<T>): Promise<T> => {
    let storeWaited = 0;
    for (let lost = 0; ;) {
      try {
        return await fn();
      } catch (err) {
        const outage = storeOutage(err);
        if (outage && storeWaited < storeBudget) {
          waitingFor++;
          try {
            storeWaited = await waitForStore(outage, storeWaited, storeBudget, (w) => (waiting = w));
          } finally {
            waitingFor--;
          }
          continue;
        }
        if (!isPlacementFailure(err) || lost++ >= MAX_REPLACEMENTS) throw err;
      }
    }
  };
  const shard = async (k: number): Promise<DataShardResult> => {
    const r = await durably(() => compute.runDataShard({ runId: input.runId, task: input.task, args: input.args, shard: k, shards: input.shards, previousRuns: input.previousRuns ?? [] }));
    done++;
    return r;
  };
  const parts = await Promise.all(Array.from({ length: input.shards }, (_, k) => shard(k)));
  status = 'exporting';
  const result = await durably(() => control.mergeDataShards({ runId: input.runId, task: input.task, args: input.args, parts }));
  status = 'completed';
  return result;
}
