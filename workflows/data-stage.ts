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
} from './training.js';

export async function dataStageWorkflow(input: DataStageInput): Promise<DataStageResult> {
  const heartbeat = input.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
  const control = controlOn(input.queues?.control ?? CONTROL_QUEUE);
  const compute = sharedOn(input.queues?.compute ?? COMPUTE_QUEUE, heartbeat);
  let done = 0;
  let status: Progress['status'] = 'training';
  // `align status` on a data stage: shards done of shards, as a run's steps.
  setHandler(progressQuery, (): Progress => ({
    runId: input.runId, recipe: input.task as never, status, step: done, maxSteps: input.shards, lastLoss: null, lastValidation: null,
    lastCheckpoint: null, tokensPerSecond: null, recent: [], parentRunId: null, exportUri: null, stage: input.task,
  }));

  const shard = async (k: number): Promise<DataShardResult> => {
    for (let lost = 0; ; lost++) {
      try {
        const r = await compute.runDataShard({ runId: input.runId, task: input.task, args: input.args, shard: k, shards: input.shards, previousRuns: input.previousRuns ?? [] });
        done++;
        return r;
      } catch (err) {
        // A lost worker or a transient failure: the shard is offered again (to any worker).
        if (!isPlacementFailure(err) || lost >= MAX_REPLACEMENTS) throw err;
      }
    }
  };
  const parts = await Promise.all(Array.from({ length: input.shards }, (_, k) => shard(k)));
  status = 'exporting';
  const result = await control.mergeDataShards({ runId: input.runId, task: input.task, args: input.args, parts });
  status = 'completed';
  return result;
}
