/**
 * Load beyond capacity: more runs than slots on one worker. Every run completes: the ones that
 * wait show it as a status ("waiting for a compute worker with a free slot"), never a failure or
 * a re-placement (before slots, a run placed on a busy worker timed out and failed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
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
import { progressQuery } from '../../workflows/training.js';
import { RunService } from '../../infra/runs.js';
import { slowIt, tinyLlama, uniqueId, writeSftData } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-load-'));
const queues = { control: 'align-control-load', compute: 'align-cpu-load' };
let client: Client;
let workers: RunningWorkers;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  workers = await startWorkers({ address: defaultTemporalAddress(), store: new RunStore(openStore(`file://${path.join(tmp, 'store')}`), path.join(tmp, 'cache')), role: 'all', workerId: uniqueId('load'), queues, slots: 1 });
});
afterAll(async () => {
  await workers?.shutdown();
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('more runs than slots', () => {
  slowIt('5 runs on 1 worker with 1 slot and a 3 s heartbeat timeout all complete, none re-placed; the waiting ones say so', async () => {
    const config = parseRecipeConfig('sft', {
      model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'data'), 40), validationFraction: 0.2 },
      trainer: { maxSteps: 12, globalBatchSize: 8, microBatchSize: 8, warmupSteps: 0, checkpointEvery: 4, valEvery: 0, maxLength: 96 },
    });
    const ids = Array.from({ length: 5 }, (_, i) => uniqueId(`load-${i}`));
    const handles = await Promise.all(ids.map((runId) => client.workflow.start('trainingWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'sft', config, heartbeatSeconds: 3, queues }] })));
    const seenWaiting = new Set<string>();
    const service = new RunService({ address: defaultTemporalAddress(), storeUri: `file://${path.join(tmp, 'store')}`, queues });
    let detail: string | null = null;
    const results: Promise<RunResult>[] = handles.map((h) => h.result());
    let done = false;
    void Promise.allSettled(results).then(() => (done = true));
    while (!done) {
      for (const h of handles) {
        const p = await h.query(progressQuery).catch(() => null);
        if (p?.waiting?.startsWith('waiting for a compute worker with a free slot')) {
          seenWaiting.add(h.workflowId);
          if (detail === null || !detail.includes('no free slot')) detail = (await service.getStatus(h.workflowId).catch(() => null))?.progress?.waiting ?? detail;
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const finished = await Promise.all(results);
    await service.close();
    // align status adds what the placement last heard: the full worker's answer.
    expect(detail).toMatch(/^waiting for a compute worker with a free slot; placeRun, attempt \d+: worker align-cpu-load-load-\S+ has no free slot \(1 of 1 in use, by load-\S+\)$/);
    expect(finished.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed', 'completed']);
    expect(seenWaiting.size).toBeGreaterThanOrEqual(3); // at most one runs, the rest wait their turn
    for (const runId of ids) {
      const events = (await client.workflow.getHandle(runId).fetchHistory()).events ?? [];
      const scheduled = (name: string) => events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === name).length;
      expect(scheduled('placeRun'), runId).toBe(1); // placed once: waiting retried the same placement
      expect(scheduled('trainChunk'), runId).toBe(3); // 12 steps in chunks of 4: nothing redone
    }
    expect(workers.resident.slotsInUse).toBe(0);
  });
});
