/**
 * A worker gives a run's memory back: 20 runs hosted one after another on one compute worker
 * leave no resident model behind, and the process's RSS stays flat (each run's model, optimizer
 * and data would otherwise stay, as they did: 66–79 MB of RSS per run measured before).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { RunResult } from '../../activities/types.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';
import { slowIt, tinyLlama, uniqueId, writeSftData } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-memory-'));
const queues = { control: 'align-control-memory', compute: 'align-cpu-memory' };
let client: Client;
let workers: RunningWorkers;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  workers = await startWorkers({ address: defaultTemporalAddress(), store: new RunStore(openStore(`file://${path.join(tmp, 'store')}`), path.join(tmp, 'cache')), role: 'all', workerId: uniqueId('memory'), queues });
});
afterAll(async () => {
  await workers?.shutdown();
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('memory released', () => {
  slowIt('20 runs hosted in turn: no resident model stays, and RSS stays flat', async () => {
    const train = writeSftData(path.join(tmp, 'data'), 40);
    const config = parseRecipeConfig('sft', { model: tinyLlama, data: { train, validationFraction: 0.2 }, trainer: { maxSteps: 4, checkpointEvery: 2, valEvery: 0, warmupSteps: 0, maxLength: 96 } });
    const rss: number[] = [];
    for (let i = 0; i < 20; i++) {
      const runId = uniqueId(`memory-${i}`);
      const r: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'sft', config, queues }] });
      expect(r.status).toBe('completed');
      expect(workers.resident.size).toBe(0); // released when the run ended
      gc();
      rss.push(process.memoryUsage().rss / 2 ** 20);
    }
    const growth = rss[19] - rss[4]; // after the first few runs warm the allocator's caches
    console.log(`memory: RSS after runs 1, 5, 10, 20: ${[rss[0], rss[4], rss[9], rss[19]].map((x) => x.toFixed(0)).join(', ')} MiB (growth over the last 15 runs ${growth.toFixed(1)} MiB)`);
    expect(growth).toBeLessThan(30);
  });
});
