/**
 * Faults and long phases on a real Temporal server with real activities: a phase much longer than
 * the heartbeat timeout (a whole validation, a whole precompute part) does not make a busy worker
 * look dead, so the run is never moved.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { RunResult } from '../../activities/types.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';
import { slowIt, tinyLlama, uniqueId, writeLines, writePreferenceData } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-faults-'));
const queues = { control: 'align-control-faults', compute: 'align-cpu-faults' };
let client: Client;
let workers: RunningWorkers;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  workers = await startWorkers({ address: defaultTemporalAddress(), store: new RunStore(openStore(`file://${path.join(tmp, 'store')}`), path.join(tmp, 'cache')), role: 'all', workerId: uniqueId('faults'), queues });
});
afterAll(async () => {
  await workers?.shutdown();
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** How many times the run's history scheduled each activity. */
async function scheduled(runId: string): Promise<Record<string, number>> {
  const h = await client.workflow.getHandle(runId).fetchHistory();
  const out: Record<string, number> = {};
  for (const e of h.events ?? []) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

describe('long phases', () => {
  slowIt('a validation and a precompute far longer than the 1 s heartbeat timeout do not move the run', async () => {
    const pairs = readFileSync(writePreferenceData(path.join(tmp, 'long'), 1000), 'utf8').trim().split('\n');
    const data = writeLines(path.join(tmp, 'long'), 'long.jsonl', [...pairs, ...pairs, ...pairs, ...pairs]); // 4,000 pairs
    const config = parseRecipeConfig('dpo', {
      model: tinyLlama, data: { train: data, validation: data }, // 4,000 held-out pairs: one long validation before the first step
      trainer: { maxSteps: 2, globalBatchSize: 8, microBatchSize: 8, warmupSteps: 0, checkpointEvery: 2, valEvery: 0, maxLength: 64 },
    });
    const runId = uniqueId('faults-long');
    const t0 = performance.now();
    const r: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'dpo', config, heartbeatSeconds: 1, queues }] });
    const seconds = (performance.now() - t0) / 1000;
    console.log(`long phases: a 2-step DPO run with 4,000-pair precompute and validation took ${seconds.toFixed(1)} s under a 1 s heartbeat timeout`);
    expect(r.status).toBe('completed');
    expect(seconds).toBeGreaterThan(3); // the phases really were longer than the heartbeat timeout
    const counts = await scheduled(runId);
    expect(counts.placeRun).toBe(1); // never re-placed
    expect(counts.precompute).toBe(1);
    expect(counts.trainChunk).toBe(1);
  });
});
