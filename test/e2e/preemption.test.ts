/**
 * Preemption: SIGTERM to a compute worker in the middle of a training chunk (a spot notice, a
 * Kubernetes drain). The worker finishes the step it is on, commits a checkpoint there (between
 * the chunk's planned checkpoints), hands the run back and exits; the run is placed on another
 * worker at once and goes on from that step. No completed step is lost or trained twice: the
 * final weights and the metrics ledger equal an uninterrupted run's.
 */
import { once } from 'node:events';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { RunResult } from '../../activities/types.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { listCheckpoints, readManifest } from '../../store/checkpoints.js';
import { readMetricsHistory } from '../../store/metrics-ledger.js';
import { progressQuery } from '../../workflows/training.js';
import { crashFixture, slowIt, spawnComputeWorker, tinyLlama, uniqueId, writeSftData } from './helpers.js';

const fixture = crashFixture('preempt');
const { tmp, storeUri, store, REF, CRASH } = fixture;

const config = () => parseRecipeConfig('sft', {
  model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'data'), 80), validationFraction: 0.2 },
  trainer: { maxSteps: 40, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, warmupSteps: 0, checkpointEvery: 20, valEvery: 20, maxLength: 96 },
});

const weightsSha = async (r: RunResult) => (await readManifest(store, r.runId, r.step)).manifest.files.find((f) => f.name === 'model.safetensors')!.sha256;

/** The step the running chunk last reported in its heartbeat, or 0. */
async function heartbeatStep(runId: string): Promise<number> {
  const d = await fixture.client.workflow.getHandle(runId).describe();
  const p = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainChunk')?.heartbeatDetails?.payloads?.[0];
  return p ? (defaultPayloadConverter.fromPayload<{ step?: number }>(p).step ?? 0) : 0;
}

describe('preemption', () => {
  slowIt('SIGTERM mid-chunk: the worker commits the step it is on and hands the run back; nothing is lost, the result is bit-identical', async () => {
    const refId = uniqueId('preempt-ref');
    const reference: RunResult = await fixture.client.workflow.execute('trainingWorkflow', { taskQueue: REF.control, workflowId: refId, args: [{ runId: refId, recipe: 'sft', config: config(), queues: REF }] });

    const env = { TEMPORAL_ADDRESS: defaultTemporalAddress(), ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${CRASH.control},${CRASH.compute}` };
    const noticed = await spawnComputeWorker(uniqueId('preempt-a'), env);
    const runId = uniqueId('preempt');
    // A long heartbeat timeout: the run can only move quickly if the worker hands it back.
    const handle = await fixture.client.workflow.start('trainingWorkflow', { taskQueue: CRASH.control, workflowId: runId, args: [{ runId, recipe: 'sft', config: config(), heartbeatSeconds: 60, queues: CRASH }] });
    let seen = 0;
    for (let i = 0; i < 2400 && seen < 4; i++) {
      seen = await heartbeatStep(runId);
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(seen).toBeGreaterThanOrEqual(4);
    noticed.kill('SIGTERM');
    const [code] = await once(noticed, 'exit');
    const rescuer = await spawnComputeWorker(uniqueId('preempt-b'), env);
    const result: RunResult = await handle.result();
    rescuer.kill('SIGTERM');

    expect(code).toBe(0);
    expect(result.status).toBe('completed');
    // The preempted chunk committed between the planned checkpoints (20, 40), at or after the step seen.
    const steps = (await listCheckpoints(store, runId)).map((c) => c.step);
    const cut = steps.find((s) => s % 20 !== 0);
    expect(cut, `checkpoints ${steps.join(', ')}`).toBeGreaterThanOrEqual(seen);
    expect(cut!).toBeLessThan(40);
    expect(await weightsSha(result)).toBe(await weightsSha(reference));
    // The status records the preemption.
    const events = (await handle.query(progressQuery)).events ?? [];
    expect(events.map((e) => [e.type, e.step])).toEqual([['preempted', cut]]);
    // Each step once in the ledger, as the uninterrupted run measured it, with the same validations.
    const [got, want] = await Promise.all([readMetricsHistory(store, runId), readMetricsHistory(store, refId)]);
    expect(got.steps.map((x) => [x.step, x.loss])).toEqual(want.steps.map((x) => [x.step, x.loss]));
    expect(got.validations.map((v) => [v.step, v.loss])).toEqual(want.validations.map((v) => [v.step, v.loss]));
    console.log(`preemption: SIGTERM after step ${seen}; committed at step ${cut}; checkpoints ${steps.sort((a, b) => a - b).join(', ')}`);
  }, 300_000);
});
