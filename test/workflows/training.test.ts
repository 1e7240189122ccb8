/**
 * The training workflow on a real Temporal dev server with mocked activities: completion with
 * continueAsNew, pause/resume/stop signals and the progress query, re-placement after a lost
 * worker, a non-retryable data error surfacing with its cause, and replay of recorded histories.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { RunInput } from '../../activities/types.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { COMPUTE_QUEUE, CONTROL_QUEUE, pauseSignal, progressQuery, resumeSignal, stopSignal } from '../../workflows/training.js';
import { fakeActivities } from './fake-activities.js';
import { workflowCode } from '../../infra/workers/workflow-code.js';
import type { Script } from './fake-activities.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const workflowsPath = path.resolve(here, '../../workflows/index.ts');
let client: Client;
let connection: NativeConnection;
let n = 0;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  connection = await NativeConnection.connect({ address: defaultTemporalAddress() });
});
afterAll(async () => {
  await client?.connection.close();
  await connection?.close();
});

// Queues of this file only: other test files run real workers on the same server.
const QUEUES = { control: `${CONTROL_QUEUE}-wftest`, compute: `${COMPUTE_QUEUE}-wftest` };

function input(over: Record<string, unknown> = {}): RunInput {
  const config = parseRecipeConfig('sft', { model: 'm', data: { train: 't.jsonl' }, trainer: { maxSteps: 10, checkpointEvery: 2, valEvery: 4, warmupSteps: 0, continueAsNewEvery: 2, ...over } });
  return { runId: `wf-test-${Date.now()}-${n++}`, recipe: 'sft', config, heartbeatSeconds: 5, queues: QUEUES };
}

/** Run `fn` with workers (control + shared compute + a per-worker queue) over fake activities. */
async function withWorkers<T>(script: Script, fn: (calls: { name: string; args: unknown }[], suffix: string) => Promise<T>): Promise<T> {
  const suffix = `${Date.now()}-${n++}`;
  const control = QUEUES.control, shared = QUEUES.compute, own = `${QUEUES.compute}-${suffix}`;
  const { acts, calls } = fakeActivities(own, script);
  const workers = await Promise.all([
    Worker.create({ connection, taskQueue: control, ...workflowCode(), activities: acts }),
    Worker.create({ connection, taskQueue: shared, activities: acts }),
    Worker.create({ connection, taskQueue: own, activities: acts }),
  ]);
  const running = workers.map((w) => w.run());
  try {
    return await fn(calls, suffix);
  } finally {
    workers.forEach((w) => w.shutdown());
    await Promise.all(running);
  }
}

describe('training workflow (real Temporal server, mocked activities)', () => {
  it('runs chunk by chunk to maxSteps, continuing as new every 2 chunks, and exports', async () => {
    await withWorkers({}, async (calls) => {
      const inp = input();
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      const result = await handle.result();
      expect(result).toMatchObject({ status: 'completed', step: 10, exportUri: 'file:///runs/x/export' });
      expect(result.validations.map((v: { step: number }) => v.step)).toEqual([0, 4, 8, 10]); // 0: before the first step
      expect(calls.filter((c) => c.name === 'trainChunk').map((c) => c.args)).toEqual([
        { from: 0, to: 2, checkpoint: null }, { from: 2, to: 4, checkpoint: 2 }, { from: 4, to: 6, checkpoint: 4 },
        { from: 6, to: 8, checkpoint: 6 }, { from: 8, to: 10, checkpoint: 8 },
      ]);
      expect(calls.filter((c) => c.name === 'prepareDataset')).toHaveLength(1); // not redone after continueAsNew
      // At the end, not at each continueAsNew: the worker frees the run's models, then uncommitted uploads go, then the export.
      expect(calls.map((c) => c.name).filter((n) => ['releaseRun', 'cleanRun', 'exportModel'].includes(n))).toEqual(['releaseRun', 'cleanRun', 'exportModel']);
      // 5 chunks with continueAsNew every 2: the run has three executions in one chain.
      const executions = [];
      for await (const w of client.workflow.list({ query: `WorkflowId = '${inp.runId}'` })) executions.push(w.status.name);
      expect(executions.sort()).toEqual(['COMPLETED', 'CONTINUED_AS_NEW', 'CONTINUED_AS_NEW']);
    });
  });

  it('pause holds the run, the progress query reports it, resume finishes it; stop ends it early', async () => {
    await withWorkers({ chunkMs: 300 }, async () => {
      const inp = input({ continueAsNewEvery: 100 });
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      await handle.signal(pauseSignal);
      await new Promise((r) => setTimeout(r, 1200));
      const paused = await handle.query(progressQuery);
      expect(paused.status).toBe('paused');
      const held = paused.step;
      await new Promise((r) => setTimeout(r, 800));
      expect((await handle.query(progressQuery)).step).toBe(held);
      await handle.signal(resumeSignal);
      expect((await handle.result()).step).toBe(10);

      const inp2 = input({ continueAsNewEvery: 100 });
      const h2 = await client.workflow.start('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp2.runId, args: [inp2] });
      await new Promise((r) => setTimeout(r, 400));
      await h2.signal(stopSignal);
      const stopped = await h2.result();
      expect(stopped.status).toBe('stopped');
      expect(stopped.step).toBeLessThan(10);
      expect(stopped.exportUri).toBeNull();
    });
  });

  it('usage and budget: device-seconds by phase add up, the cost follows cost.perDeviceHour, budget.maxDeviceHours pauses the run once saying why; resume goes on', async () => {
    await withWorkers({}, async () => {
      const config = parseRecipeConfig('sft', {
        model: 'm', data: { train: 't.jsonl' }, trainer: { maxSteps: 10, checkpointEvery: 2, valEvery: 4, warmupSteps: 0 },
        cost: { perDeviceHour: 7200, currency: 'EUR' }, budget: { maxDeviceHours: 0.025 / 3600 }, // each fake chunk reports 0.01 s
      });
      const inp: RunInput = { runId: `wf-test-${Date.now()}-${n++}`, recipe: 'sft', config, heartbeatSeconds: 5, queues: QUEUES };
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      let p = await handle.query(progressQuery);
      for (let i = 0; i < 200 && p.status !== 'paused'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        p = await handle.query(progressQuery);
      }
      expect(p.status).toBe('paused');
      expect(p.step).toBe(6); // three chunks of 0.01 s passed 0.025 s
      expect(p.pauseReason).toMatch(/^budget reached: 0\.00000833 of budget\.maxDeviceHours 0\.0000069\d* device-hours used; align resume goes on past it/);
      expect(p.usage!.phases.training.deviceSeconds).toBeCloseTo(0.03, 10);
      expect(p.cost).toMatchObject({ currency: 'EUR', perDeviceHour: 7200 });
      expect(p.cost!.amount).toBeCloseTo(0.06, 10); // 0.03 s at 7200 per hour = 2 per second
      await handle.signal(resumeSignal);
      const result = await handle.result();
      expect(result.step).toBe(10); // the budget paused it once
      const end = await handle.query(progressQuery);
      expect(end.usage!.deviceSeconds).toBeCloseTo(0.05, 10);
      expect(end.usage!.tokens).toBe(1000);
      expect(end.pauseReason).toBeNull();
    });
  });

  it('the hang watchdog: a chunk that heartbeats without progress for trainer.hangSeconds is failed, the run moves from its last checkpoint, the hang is recorded', async () => {
    await withWorkers({ hangOnceAt: 4 }, async (calls) => {
      const inp = { ...input({ hangSeconds: 1, continueAsNewEvery: 100 }), heartbeatSeconds: 3 };
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      const result = await handle.result();
      expect(result.status).toBe('completed');
      const chunks = calls.filter((c) => c.name === 'trainChunk').map((c) => (c.args as { from: number }).from);
      expect(chunks).toEqual([0, 2, 4, 4, 6, 8]); // the chunk from 4 ran again after the hang
      const events = (await handle.query(progressQuery)).events!;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'hang', step: 4 });
      expect(events[0].detail).toMatch(/^no progress for \d+ s \(last report: \{"step":5,"phase":"training"\}\); moved from the checkpoint at step 4$/);
    });
  });

  it('a lost worker re-places the run, which resumes from the last checkpoint', async () => {
    await withWorkers({ failOnceAt: 4 }, async (calls) => {
      const inp = input({ continueAsNewEvery: 100 });
      const result = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      expect(result.step).toBe(10);
      const chunks = calls.filter((c) => c.name === 'trainChunk').map((c) => c.args);
      expect(chunks.filter((c) => (c as { from: number }).from === 4)).toEqual([{ from: 4, to: 6, checkpoint: 4 }, { from: 4, to: 6, checkpoint: 4 }]);
      expect(calls.filter((c) => c.name === 'placeRun')).toHaveLength(2);
    });
  });

  it('a gang that cannot place its next rank gives back the ranks it holds, then places them all and trains', async () => {
    await withWorkers({ rank1AfterGiveBack: true }, async (calls) => {
      const base = input({ continueAsNewEvery: 100, maxSteps: 4, globalBatchSize: 8, microBatchSize: 4 });
      const inp = { ...base, config: parseRecipeConfig('sft', { ...base.config, parallel: { dp: 2 } }), gangPlaceSeconds: 2 };
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      const result = await handle.result();
      expect(result.status).toBe('completed');
      const slots = calls.filter((c) => c.name === 'placeRun' || c.name === 'releaseRun').map((c) => `${c.name} ${(c.args as { runId: string }).runId.split('.').at(-1)}`);
      // rank 0 placed, rank 1 refused until the give-back, then both placed; released at the end.
      const firstRelease = slots.indexOf('releaseRun rank0');
      expect(slots[0]).toBe('placeRun rank0');
      expect(slots.slice(1, firstRelease).every((x) => x === 'placeRun rank1')).toBe(true);
      expect(slots.slice(firstRelease, firstRelease + 3)).toEqual(['releaseRun rank0', 'placeRun rank0', 'placeRun rank1']);
      // Both ranks run every chunk (in either order within one).
      const chunks = calls.filter((c) => c.name === 'gangChunk').map((c) => c.args as { rank: number; from: number; to: number });
      expect(chunks.sort((a, b) => a.from - b.from || a.rank - b.rank)).toEqual([
        { rank: 0, from: 0, to: 2 }, { rank: 1, from: 0, to: 2 }, { rank: 0, from: 2, to: 4 }, { rank: 1, from: 2, to: 4 },
      ]);
      expect((await handle.query(progressQuery)).waiting).toBeNull();
    });
  });

  it('precompute runs once before training; a lost worker there re-places it, and every chunk gets its reference', async () => {
    await withWorkers({ precomputeFailsOnce: true }, async (calls) => {
      const inp = { ...input({ continueAsNewEvery: 100, maxSteps: 4 }), recipe: 'dpo' as const };
      const result = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] });
      expect(result.status).toBe('completed');
      expect(calls.filter((c) => c.name === 'precompute')).toEqual([{ name: 'precompute', args: { recipe: 'dpo' } }, { name: 'precompute', args: { recipe: 'dpo' } }]);
      const chunks = calls.filter((c) => c.name === 'trainChunk').map((c) => c.args as { precomputed?: string });
      expect(chunks.map((c) => c.precomputed)).toEqual(['runs/x/precompute/reference-logps/index.json', 'runs/x/precompute/reference-logps/index.json']);
      expect(calls.findIndex((c) => c.name === 'precompute')).toBeLessThan(calls.findIndex((c) => c.name === 'trainChunk'));
    });
  });

  it('a run that fails after placement still gives its worker\'s memory back and cleans its uploads', async () => {
    await withWorkers({ nanAt: 4 }, async (calls) => {
      const inp = input({ continueAsNewEvery: 100 });
      const err = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(calls.map((c) => c.name).slice(-2)).toEqual(['releaseRun', 'cleanRun']);
    });
  });

  it('a data error fails the run at once, non-retryable, with its file and line', async () => {
    await withWorkers({ dataError: 'train.jsonl:3: missing key "output"' }, async (calls) => {
      const inp = input();
      const err = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: inp.runId, args: [inp] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause?.cause as { message: string; type?: string; nonRetryable?: boolean };
      expect(cause.message).toBe('train.jsonl:3: missing key "output"');
      expect(cause.type).toBe('DataError');
      expect(calls.filter((c) => c.name === 'prepareDataset')).toHaveLength(1); // not retried
      expect(calls.filter((c) => c.name === 'trainChunk')).toHaveLength(0);
      expect(calls.filter((c) => c.name === 'releaseRun')).toHaveLength(0); // nothing was placed
    });
  });
});

describe('replay', () => {
  // sft.json and dpo.json predate the recipe table (sftWorkflow/dpoWorkflow, no precompute): they
  // replay through the patched() branches; training.json is the current trainingWorkflow.
  it.each(readdirSync(path.join(here, 'histories')).map((f) => f.replace(/\.json$/, '')))('the recorded %s history replays without non-determinism', async (name) => {
    const history = JSON.parse(readFileSync(path.join(here, 'histories', `${name}.json`), 'utf8'));
    await Worker.runReplayHistory({ workflowsPath }, history, `replay-${name}`);
  });
});
