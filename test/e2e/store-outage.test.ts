/**
 * Store outages: the S3 server (a private versitygw) is killed with -9 in the middle of a run.
 * Down for 10 s, the run waits it out (its status says what it waits for, naming the endpoint)
 * and completes with the weights of an uninterrupted run; down for longer than the run's budget,
 * it fails cleanly with the store's message, and resume-failed finishes it, bit-identical. A
 * pipeline's sharded data stage waits out an outage the same way, shard by shard.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { DataStageResult } from '../../activities/pipeline/types.js';
import type { RunResult } from '../../activities/types.js';
import { startS3 } from '../../infra/dev-stack.js';
import type { S3Info } from '../../infra/dev-stack.js';
import { RunService } from '../../infra/runs.js';
import { freePort } from '../../infra/services.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { progressQuery } from '../../workflows/training.js';
import { readManifest } from '../../store/checkpoints.js';
import { readMetricsHistory } from '../../store/metrics-ledger.js';
import { S3Store } from '../../store/s3-store.js';
import { RunStore } from '../../store/run-store.js';
import { slowIt, tinyLlama, uniqueId, writeSftData } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-outage-'));
const stateDir = path.join(tmp, 's3');
const queues = { control: 'align-control-outage', compute: 'align-cpu-outage' };
const creds = { accessKey: 'outage-test-access', secretKey: 'outage-test-secret-0123456789' };
let port: number;
let s3: S3Info;
let client: Client;
let workers: RunningWorkers;
let store: S3Store;

const up = async () => (s3 = await startS3({ stateDir, s3Port: port, detached: false, bucket: 'outage', ...creds }));
const down = () => process.kill(s3.pid, 'SIGKILL');

beforeAll(async () => {
  port = await freePort();
  await up();
  store = new S3Store('outage', 'store', { endpoint: s3.endpoint, region: s3.region, accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey });
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  workers = await startWorkers({ address: defaultTemporalAddress(), store: new RunStore(store, path.join(tmp, 'cache')), role: 'all', workerId: uniqueId('outage'), queues });
});
afterAll(async () => {
  await workers?.shutdown();
  await client?.connection.close();
  try {
    down();
  } catch {
    /* already down */
  }
  rmSync(tmp, { recursive: true, force: true });
});

const config = () => parseRecipeConfig('sft', {
  model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'data'), 80), validationFraction: 0.2 },
  trainer: { maxSteps: 24, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, warmupSteps: 0, checkpointEvery: 4, valEvery: 0, maxLength: 96 },
});

async function weightsSha(runId: string, step: number): Promise<string> {
  return (await readManifest(store, runId, step)).manifest.files.find((f) => f.name === 'model.safetensors')!.sha256;
}

/** Starts a run and kills the S3 server once the run has passed step 8. */
async function startAndBreak(runId: string, extra: Record<string, unknown>) {
  const handle = await client.workflow.start('trainingWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'sft', config: config(), heartbeatSeconds: 10, queues, ...extra }] });
  for (let i = 0; i < 600 && (await handle.query(progressQuery)).step < 8; i++) await new Promise((r) => setTimeout(r, 50));
  down();
  return handle;
}

describe('store outages', () => {
  let reference: RunResult;
  slowIt('S3 down for 10 s mid-run: the run waits (saying for what), then completes bit-identical to an uninterrupted run', async () => {
    const refId = uniqueId('outage-ref');
    reference = await client.workflow.execute('trainingWorkflow', { taskQueue: queues.control, workflowId: refId, args: [{ runId: refId, recipe: 'sft', config: config(), queues }] });
    const handle = await startAndBreak(uniqueId('outage-10s'), {});
    const t0 = Date.now();
    let waiting: string | null = null;
    while (Date.now() - t0 < 10_000) {
      waiting ??= (await handle.query(progressQuery)).waiting ?? null;
      await new Promise((r) => setTimeout(r, 200));
    }
    await up();
    const result: RunResult = await handle.result();
    expect(waiting).toMatch(new RegExp(`^waiting for the store \\(S3 endpoint ${s3.endpoint.replace(/[.]/g, '\\.')} is unreachable`));
    expect(result.status).toBe('completed');
    expect(await weightsSha(result.runId, 24)).toBe(await weightsSha(reference.runId, 24));
  });

  slowIt('S3 down for longer than the run\'s budget: the run fails with the store\'s message, and resume-failed finishes it bit-identical', async () => {
    const runId = uniqueId('outage-long');
    const handle = await startAndBreak(runId, { storeRetrySeconds: 4 });
    const err = await handle.result().then(() => null, (e: unknown) => e);
    expect(err).not.toBeNull();
    await up();
    const service = new RunService({ address: defaultTemporalAddress(), storeUri: 's3://outage/store', queues, s3: { endpoint: s3.endpoint, region: s3.region, accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey } });
    try {
      const view = await service.getStatus(runId);
      expect(view.state).toBe('FAILED');
      expect(view.failure?.type).toBe('StoreError');
      expect(view.failure?.message).toMatch(new RegExp(`S3 endpoint ${s3.endpoint.replace(/[.]/g, '\\.')} is unreachable`));
      const resumed = await service.resumeFailed(runId, { detach: false, pollMs: 200 });
      expect(resumed.resumeFrom.step).toBeGreaterThanOrEqual(8);
      expect(resumed.final?.state).toBe('COMPLETED');
      expect(await weightsSha(resumed.runId, 24)).toBe(await weightsSha(reference.runId, 24));
      // The ledger continues across the two runs: each step once, as the uninterrupted run measured it.
      const [got, want] = await Promise.all([readMetricsHistory(store, resumed.runId), readMetricsHistory(store, reference.runId)]);
      expect(got.lineage.map((l) => l.runId)).toEqual([runId, resumed.runId]);
      expect(got.lineage[1].fromStep).toBe(resumed.resumeFrom.step);
      expect(got.steps.map((x) => [x.step, x.loss])).toEqual(want.steps.map((x) => [x.step, x.loss]));
      expect(got.steps).toHaveLength(24);
    } finally {
      await service.close();
    }
  });

  slowIt('S3 down for 10 s in the middle of a data stage: its shards wait (saying for what) and the stage completes with every record', async () => {
    const runId = uniqueId('outage-data');
    const args = { policy: tinyLlama, data: writeSftData(path.join(tmp, 'spin'), 64), maxNewTokens: 16, temperature: 1, maxRecords: 64, shardPrompts: 4, seed: 3, round: 1 };
    const handle = await client.workflow.start('dataStageWorkflow', {
      taskQueue: queues.control, workflowId: runId, args: [{ runId, task: 'spin-pairs', args, shards: 16, heartbeatSeconds: 10, queues }],
    });
    for (let i = 0; i < 1200 && (await handle.query(progressQuery)).step < 1; i++) await new Promise((r) => setTimeout(r, 25));
    down();
    const t0 = Date.now();
    let waiting: string | null = null;
    while (Date.now() - t0 < 10_000) {
      const p = await handle.query(progressQuery);
      if (p.status === 'waiting') waiting ??= p.waiting ?? null;
      await new Promise((r) => setTimeout(r, 200));
    }
    await up();
    const result: DataStageResult = await handle.result();
    expect(waiting).toMatch(/^waiting for the store \(S3 endpoint .* is unreachable/);
    expect(result.records).toBe(64);
    expect((await store.get(`runs/${runId}/output/data.jsonl`)).toString().trim().split('\n')).toHaveLength(64);
  });
});
