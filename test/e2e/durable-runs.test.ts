/**
 * End to end on a real Temporal dev server, real activities, the tiny fixture model and a real
 * store: bad input of every recipe fails a run before training with a cause a user can act on,
 * and a run reads its model and data from S3 and keeps its checkpoints there. Each recipe's
 * learning effect and kill -9 resume are in recipes.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { ApplicationFailure } from '@temporalio/activity';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { createActivities } from '../../activities/index.js';
import { RunService } from '../../infra/runs.js';
import { createModel, savePretrained } from '../../models/pretrained.js';
import { RunStore } from '../../store/run-store.js';
import type { RunResult } from '../../activities/types.js';
import { openStore } from '../../store/index.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { slowIt, tinyLlama, uniqueId, writeSftData } from './helpers.js';

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

describe('durable runs end to end', () => {
  slowIt('bad input fails the run before any training, non-retryable, naming the file and line or the field', async () => {
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const dir = path.join(tmp, 'bad');
    mkdirSync(dir, { recursive: true });
    // A teacher whose vocabulary differs from the student's (259 byte-level tokens).
    const teacher = path.join(dir, 'teacher-300');
    const wide = createModel({ family: 'llama', vocabSize: 300, hiddenSize: 16, numLayers: 1, numHeads: 2, numKvHeads: 1, intermediateSize: 32, maxPositionEmbeddings: 256 });
    await savePretrained(wide, teacher);
    wide.dispose();
    const sft = '{"input": "a", "output": "b"}\n{"input": "c", "output": "d"}\n{"input": "e", "output": "f"}\n';
    const cases: [string, string, string, Record<string, unknown>, RegExp, string][] = [
      ['sft', 'malformed.jsonl', '{"input": "a", "output": "b"}\n{"input": "c" "output": "d"}\n', {}, /malformed\.jsonl:2: not valid JSON/, 'DataError'],
      ['sft', 'missing.jsonl', '{"input": "a", "output": "b"}\n{"input": "c"}\n', {}, /missing\.jsonl:2: missing key "output"/, 'DataError'],
      ['sft', 'empty.jsonl', '\n', {}, /empty\.jsonl: the dataset is empty/, 'DataError'],
      ['rm', 'arity.jsonl', '{"text": "a", "label": [1, 2]}\n{"text": "b", "label": [1, 2, 3]}\n', { rm: { type: 'regression', numAttributes: 2 } }, /arity\.jsonl:2: "label" has 3 values, expected 2 \(numAttributes\)/, 'DataError'],
      ['rm', 'nomargin.jsonl', '{"prompt": "a", "chosen": "b", "rejected": "c", "margin": 1}\n{"prompt": "d", "chosen": "e", "rejected": "f"}\n', { rm: { loss: 'margin_bt' } }, /nomargin\.jsonl:2: rm\.loss margin_bt needs a finite number "margin" on every pair, got none/, 'DataError'],
      ['kto', 'unlabelled.jsonl', '{"prompt": "a", "completion": "b", "label": true}\n{"prompt": "c", "completion": "d"}\n', {}, /unlabelled\.jsonl:2: missing key "label"/, 'DataError'],
      ['kd', 'kd.jsonl', sft, { kd: { teacher } }, /kd\.teacher: the teacher's vocabulary has 300 tokens and the student's \(model\) 259/, 'ConfigError'],
    ];
    const compute = await startWorkers({ address: defaultTemporalAddress(), store: runStore, role: 'compute', workerId: uniqueId('bad'), queues: QUEUES });
    try {
      await Promise.all(cases.map(async ([recipe, name, text, extra, message, type]) => {
        const file = path.join(dir, name);
        writeFileSync(file, text);
        const config = parseRecipeConfig(recipe, { model: tinyLlama, data: { train: file, validationFraction: 0.34 }, trainer: { maxSteps: 4, warmupSteps: 0, globalBatchSize: 1, microBatchSize: 1, maxLength: 64 }, ...extra });
        const runId = uniqueId(`e2e-bad-${recipe}`);
        const err = await client.workflow.execute('trainingWorkflow', { taskQueue: QUEUES.control, workflowId: runId, args: [{ runId, recipe, config, queues: QUEUES }] })
          .then(() => null, (e: Error & { cause?: { cause?: { message: string; type?: string; nonRetryable?: boolean } } }) => e.cause?.cause);
        expect(err?.message).toMatch(message);
        expect(err?.type).toBe(type);
        expect(err?.nonRetryable).toBe(true);
        // Nothing trained: no checkpoint was ever written.
        expect(await openStore(storeUri).list(`runs/${runId}/checkpoints/`)).toEqual([]);
      }));
    } finally {
      await compute.shutdown();
    }
  });

  slowIt('a trainer.maxLength beyond the model\'s positions, and scoring with a model that has no score head, are clear errors', async () => {
    const service = new RunService({ address: defaultTemporalAddress(), storeUri, queues: QUEUES });
    try {
      await expect(service.startRun('sft', { model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'long'), 4) }, trainer: { maxLength: 4096 } }))
        .rejects.toThrow("trainer.maxLength (4096) exceeds the model's max_position_embeddings (256); lower trainer.maxLength to at most 256");
    } finally {
      await service.close();
    }
    const acts = createActivities({ store: runStore, workerQueue: 'unused' });
    const err = await acts.scoreResponses({ model: tinyLlama, samples: [{ prompt: 'a', response: 'b' }] }).catch((e: ApplicationFailure) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('NotARewardModelError');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(/not a reward model/);
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
});
