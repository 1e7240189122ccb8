/**
 * End to end on a real Temporal dev server, real activities, the tiny fixture model and a real
 * store: SFT lowers validation loss, DPO reaches ≥ 0.9 held-out reward accuracy, and the crash
 * test — kill -9 the compute worker mid-run, start another — finishes with final weights
 * bit-identical to an uninterrupted run with the same seed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { RunStore } from '../../store/run-store.js';
import type { RunResult } from '../../activities/types.js';
import { readManifest } from '../../store/checkpoints.js';
import { openStore } from '../../store/index.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { progressQuery } from '../../workflows/training.js';
import { slowIt, spawnComputeWorker, tinyLlama, writePreferenceData, writeSftData } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-e2e-'));
const storeUri = `file://${path.join(tmp, 'store')}`;
const runStore = new RunStore(openStore(storeUri), path.join(tmp, 'cache'));
let client: Client;
let control: RunningWorkers;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  // The control worker (workflows, data preparation, retention, export) lives in the test process.
  control = await startWorkers({ address: defaultTemporalAddress(), store: runStore, role: 'control', queues: QUEUES });
});
afterAll(async () => {
  await control?.shutdown();
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
});

// Queues of this file only: other test files run workers on the same server.
const QUEUES = { control: 'align-control-e2e', compute: 'align-cpu-e2e' };
const uniqueId = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

function dpoConfig(train: string) {
  return parseRecipeConfig('dpo', {
    model: tinyLlama, seed: 1, data: { train, validationFraction: 0.25 },
    trainer: { maxSteps: 24, globalBatchSize: 8, microBatchSize: 4, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 4, valEvery: 12, keepCheckpoints: 2, maxLength: 64 },
  });
}

async function finalWeightsSha(result: RunResult): Promise<string> {
  const store = openStore(storeUri);
  const { manifest } = await readManifest(store, result.runId, result.step);
  return manifest.files.find((f) => f.name === 'model.safetensors')!.sha256;
}

describe('durable runs end to end', () => {
  slowIt('bad data fails the run before any training, non-retryable, naming file and line', async () => {
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const dir = path.join(tmp, 'bad');
    mkdirSync(dir, { recursive: true });
    const cases: [string, string, RegExp][] = [
      ['malformed.jsonl', '{"input": "a", "output": "b"}\n{"input": "c" "output": "d"}\n', /malformed\.jsonl:2: not valid JSON/],
      ['missing.jsonl', '{"input": "a", "output": "b"}\n{"input": "c"}\n', /missing\.jsonl:2: missing key "output"/],
      ['empty.jsonl', '\n', /empty\.jsonl: the dataset is empty/],
    ];
    const compute = await startWorkers({ address: defaultTemporalAddress(), store: runStore, role: 'compute', workerId: uniqueId('bad'), queues: QUEUES });
    try {
      await Promise.all(cases.map(async ([name, text, message]) => {
        const file = path.join(dir, name);
        writeFileSync(file, text);
        const config = parseRecipeConfig('sft', { model: tinyLlama, data: { train: file }, trainer: { maxSteps: 4, warmupSteps: 0 } });
        const runId = uniqueId('e2e-bad');
        const err = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: runId, args: [{ runId, recipe: 'sft', config, queues: QUEUES }] })
          .then(() => null, (e: Error & { cause?: { cause?: { message: string; type?: string; nonRetryable?: boolean } } }) => e.cause?.cause);
        expect(err?.message).toMatch(message);
        expect(err?.type).toBe('DataError');
        expect(err?.nonRetryable).toBe(true);
        expect(await runStore.getJson(`runs/${runId}/data/dataset.json`)).toBeNull(); // nothing prepared, nothing trained
      }));
    } finally {
      await compute.shutdown();
    }
  });

  slowIt('an SFT run reads its model and data from s3:// and keeps its checkpoints in S3 (versitygw)', async () => {
    const bucket = process.env.ALIGN_S3_BUCKET!;
    const s3 = openStore(`s3://${bucket}`);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      await s3.put(`inputs/tiny-llama/${f}`, { file: path.join(tinyLlama, f) });
    }
    await s3.put('inputs/sft.jsonl', { file: writeSftData(path.join(tmp, 's3'), 40) });
    const s3Store = new RunStore(openStore(`s3://${bucket}/store-e2e`), path.join(tmp, 's3-cache'));
    const queues = { control: 'align-control-e2e-s3', compute: 'align-cpu-e2e-s3' };
    const workers = await startWorkers({ address: defaultTemporalAddress(), store: s3Store, role: 'all', workerId: uniqueId('s3'), queues });
    try {
      const config = parseRecipeConfig('sft', {
        model: `s3://${bucket}/inputs/tiny-llama`, data: { train: `s3://${bucket}/inputs/sft.jsonl`, validationFraction: 0.2 },
        trainer: { maxSteps: 6, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, warmupSteps: 0, checkpointEvery: 3, valEvery: 3, maxLength: 96 },
      });
      const runId = uniqueId('e2e-s3');
      const result: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'sft', config, heartbeatSeconds: 30, queues }] });
      expect(result.status).toBe('completed');
      expect(result.lastCheckpoint!.uri).toBe(`s3://${bucket}/store-e2e/runs/${runId}/checkpoints/6/`);
      expect(result.exportUri).toBe(`s3://${bucket}/store-e2e/runs/${runId}/export/`);
      const exported = (await openStore(`s3://${bucket}/store-e2e`).list(`runs/${runId}/export/`)).map((o) => o.key.split('/').at(-1));
      expect(exported.sort()).toEqual(['config.json', 'export.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    } finally {
      await workers.shutdown();
    }
  });

  slowIt('SFT lowers validation loss (from the base model\'s to below half of it)', async () => {
    const compute = await startWorkers({ address: defaultTemporalAddress(), store: runStore, role: 'compute', workerId: uniqueId('sft'), queues: QUEUES });
    try {
      const config = parseRecipeConfig('sft', {
        model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'sft'), 80), validationFraction: 0.2 },
        trainer: { maxSteps: 20, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 96 },
      });
      const runId = uniqueId('e2e-sft');
      const result = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: runId, args: [{ runId, recipe: 'sft', config, heartbeatSeconds: 30, queues: QUEUES }] });
      const before = result.validations[0].loss; // validated before the first step
      expect(result.status).toBe('completed');
      expect(result.validations.map((v: { step: number }) => v.step)).toEqual([0, 10, 20]);
      expect(before).toBeGreaterThan(1.0);
      expect(result.validations.at(-1)!.loss).toBeLessThan(before / 2);
      expect(result.exportUri).toMatch(/runs\/.*\/export\/$/);
    } finally {
      await compute.shutdown();
    }
  });

  slowIt('DPO raises held-out reward accuracy to ≥ 0.9; a kill -9 of the compute worker mid-run changes nothing', async () => {
    const train = writePreferenceData(path.join(tmp, 'dpo'), 96);
    const env = { TEMPORAL_ADDRESS: defaultTemporalAddress(), ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${QUEUES.control},${QUEUES.compute}` };

    // Uninterrupted run.
    const steady = await spawnComputeWorker(uniqueId('steady'), env);
    const refId = uniqueId('e2e-dpo-ref');
    const reference: RunResult = await client.workflow.execute('trainingWorkflow', {
      taskQueue: QUEUES.control, workflowId: refId, args: [{ runId: refId, recipe: 'dpo', config: dpoConfig(train), heartbeatSeconds: 5, queues: QUEUES }],
    });
    steady.kill('SIGTERM');
    expect(reference.status).toBe('completed');
    expect(reference.validations.at(-1)!.metrics.accuracy).toBeGreaterThanOrEqual(0.9);

    // Same config and seed; the worker is killed with SIGKILL after the second checkpoint.
    const doomed = await spawnComputeWorker(uniqueId('doomed'), env);
    const runId = uniqueId('e2e-dpo-crash');
    const handle = await client.workflow.start('trainingWorkflow', {
      taskQueue: QUEUES.control, workflowId: runId, args: [{ runId, recipe: 'dpo', config: dpoConfig(train), heartbeatSeconds: 5, queues: QUEUES }],
    });
    for (let i = 0; i < 600; i++) {
      if ((await handle.query(progressQuery)).step >= 8) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stepAtKill = (await handle.query(progressQuery)).step;
    doomed.kill('SIGKILL');
    const rescuer = await spawnComputeWorker(uniqueId('rescuer'), env);
    const result: RunResult = await handle.result();
    rescuer.kill('SIGTERM');

    expect(stepAtKill).toBeGreaterThanOrEqual(8);
    expect(stepAtKill).toBeLessThan(24);
    expect(result.status).toBe('completed');
    expect(result.step).toBe(24);
    expect(await finalWeightsSha(result)).toBe(await finalWeightsSha(reference));
  });
});
