/**
 * The pipeline workflow on the real Temporal server with mocked activities (fake-activities.ts):
 * a stage whose run fails for a retryable reason (its shard's workers kept dying past the data
 * stage's re-placements) runs again as a new run that takes over the failed one's committed
 * shards; a stage that fails for good (a DataError) fails the pipeline at once, naming it; a
 * stage whose run a person stopped is not recorded as completed (it exported nothing).
 */
import { Client, WorkflowFailedError } from '@temporalio/client';
import { stopSignal } from '../../workflows/training.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineRecord } from '../../activities/pipeline/types.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startFakeWorkers, type Script } from './fake-activities.js';

const suffix = `${process.pid}-${Date.now()}`;
const queues = { control: `pipeline-test-control-${suffix}`, compute: `pipeline-test-cpu-${suffix}` };
const script: Script = {};
let client: Client;
let fake: Awaited<ReturnType<typeof startFakeWorkers>>;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  fake = await startFakeWorkers(defaultTemporalAddress(), queues, script);
});
afterAll(async () => {
  await fake?.stop();
  await client?.connection.close();
});

const start = (id: string) => client.workflow.execute('pipelineWorkflow', {
  taskQueue: queues.control, workflowId: id, args: [{ pipelineId: id, pipeline: 'test', config: {}, queues }],
});
const callsOf = (name: string) => fake.calls.filter((c) => c.name === name);

describe('pipelineWorkflow (mocked activities)', () => {
  it('a stage that failed for a retryable reason runs again as <stage>.r1, taking over the failed run\'s shards', async () => {
    fake.calls.length = 0;
    script.shardFailures = { count: 6, kind: 'retryable' }; // more than the data stage's 5 re-placements
    const id = `p-retry-${suffix}`;
    const r = (await start(id)) as PipelineRecord;
    expect(r.state).toBe('completed');
    expect(r.stages[0]).toMatchObject({ state: 'completed', runId: `${id}.pairs-1.r1`, failedRuns: [`${id}.pairs-1`], error: null });
    expect(callsOf('planPipelineStage').map((c) => (c.args as { runId: string }).runId)).toEqual([`${id}.pairs-1`, `${id}.pairs-1.r1`]);
    expect(callsOf('runDataShard').at(-1)!.args).toEqual({ runId: `${id}.pairs-1.r1`, previousRuns: [`${id}.pairs-1`] });
  }, 60_000);

  it('a stage that failed for good fails the pipeline at once, naming the stage and the cause', async () => {
    fake.calls.length = 0;
    script.shardFailures = { count: 1, kind: 'data' };
    const id = `p-data-${suffix}`;
    const err = await start(id).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause!.message).toBe(`pipeline ${id}: stage pairs-1 (preference-pairs, run ${id}.pairs-1) failed: prompts.jsonl:3: missing key "prompt"; after fixing the cause, continue with: align pipeline resume ${id}`);
    expect(callsOf('runDataShard')).toHaveLength(1);
    expect(callsOf('recordPipeline').at(-1)!.args).toEqual({ stages: ['pairs-1:failed'] });
  }, 60_000);

  /**
   * A pipeline whose one stage is a long (fake) SFT run: `act` is called once the stage's child
   * run exists; returns what the pipeline ended with (its failure, or null).
   */
  async function withRunningStage(id: string, act: () => Promise<unknown>): Promise<unknown> {
    fake.calls.length = 0;
    script.shardFailures = undefined;
    Object.assign(script, { runStageSteps: 1000, chunkMs: 50 });
    try {
      const pipeline = start(id).then(() => null, (e: unknown) => e);
      const child = client.workflow.getHandle(`${id}.pairs-1`);
      for (let i = 0; i < 200 && !(await child.describe().then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
      await act();
      return await pipeline;
    } finally {
      Object.assign(script, { runStageSteps: undefined, chunkMs: undefined });
    }
  }

  it('a stage whose run was stopped fails the pipeline without a retry: a stopped run exported nothing', async () => {
    const id = `p-stop-${suffix}`;
    const err = await withRunningStage(id, () => client.workflow.getHandle(`${id}.pairs-1`).signal(stopSignal));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause!.message).toMatch(new RegExp(`^pipeline ${id}: stage pairs-1 \\(preference-pairs, run ${id}\\.pairs-1\\) failed: its run was stopped at step \\d+`));
    expect(callsOf('planPipelineStage')).toHaveLength(1);
    expect(callsOf('recordPipeline').at(-1)!.args).toEqual({ stages: ['pairs-1:failed'] });
  }, 60_000);

  it('a cancelled pipeline records its running stage as failed, not left running', async () => {
    const id = `p-cancel-${suffix}`;
    expect(await withRunningStage(id, () => client.workflow.getHandle(id).cancel())).toBeInstanceOf(WorkflowFailedError);
    expect(callsOf('recordPipeline').at(-1)!.args).toEqual({ stages: ['pairs-1:failed'] });
  }, 60_000);
});
