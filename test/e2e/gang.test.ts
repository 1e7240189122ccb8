/**
 * Gang runs through Temporal (config.parallel): the ranks of a DP=2 SFT run train on two worker
 * processes and end bit for bit where one worker training the same global batches ends; a kill -9
 * of one rank's worker mid-run restarts the gang from its last checkpoint and changes nothing;
 * a run asking for more ranks than the fleet has waits, saying so, instead of failing.
 */
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Client } from '@temporalio/client';
import { beforeAll, describe, expect } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { RunResult } from '../../activities/types.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { readManifest } from '../../store/checkpoints.js';
import { openStore } from '../../store/index.js';
import { readMetricsHistory } from '../../store/metrics-ledger.js';
import { progressQuery } from '../../workflows/training.js';
import { rewardPairs } from '../../data/demo/make-extra.js';
import { crashFixture, slowIt, spawnComputeWorker, tinyLlama, uniqueId, writeLines, writeSftData } from './helpers.js';

const fixture = crashFixture('gang');
const { tmp, storeUri, runStore, REF, CRASH } = fixture;
let client: Client;
beforeAll(() => void (client = fixture.client));

const env = () => ({ TEMPORAL_ADDRESS: defaultTemporalAddress(), ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${CRASH.control},${CRASH.compute}`, ALIGN_NUM_THREADS: '1', ALIGN_WORKER_SLOTS: '1' });

// One micro-batch per rank: the rank-ordered sum of two micro-batches is what one worker accumulates.
const raw = (parallel?: Record<string, unknown>) => ({
  model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'sft'), 80), validationFraction: 0.2 },
  trainer: { maxSteps: 12, globalBatchSize: 8, microBatchSize: 4, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 4, valEvery: 0, keepCheckpoints: 2, maxLength: 96 },
  ...(parallel ? { parallel } : {}),
});

async function weightsSha(result: RunResult): Promise<string> {
  const { manifest } = await readManifest(openStore(storeUri), result.runId, result.step);
  return manifest.files.find((x) => x.name === 'model.safetensors')!.sha256;
}

const stepsOf = async (runId: string) => (await readMetricsHistory(runStore.store, runId)).steps.map((x) => [x.step, x.loss, x.lr, x.gradNorm, x.tokens]);

async function waitFor(pred: () => Promise<boolean>, what: string, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('gang runs', () => {
  slowIt('DP=2 on two worker processes ≡ one worker; kill -9 of a rank\'s worker restarts the gang and changes nothing; too few workers is a wait', async () => {
    const single = parseRecipeConfig('sft', raw());
    const refId = uniqueId('e2e-gang-ref');
    const reference: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: REF.control, workflowId: refId, args: [{ runId: refId, recipe: 'sft', config: single, heartbeatSeconds: 5, queues: REF }] });
    expect(reference.status).toBe('completed');

    const config = parseRecipeConfig('sft', raw({ dp: 2 }));
    const workers: ChildProcess[] = await Promise.all([spawnComputeWorker(uniqueId('gang-a'), env()), spawnComputeWorker(uniqueId('gang-b'), env())]);
    try {
      // Uninterrupted gang.
      const gangId = uniqueId('e2e-gang');
      const gang: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: CRASH.control, workflowId: gangId, args: [{ runId: gangId, recipe: 'sft', config, heartbeatSeconds: 5, queues: CRASH }] });
      expect(gang.status).toBe('completed');
      expect(await weightsSha(gang)).toBe(await weightsSha(reference));
      expect(await stepsOf(gangId)).toEqual(await stepsOf(reference.runId));

      // kill -9 of one rank's worker after the first checkpoint.
      const crashId = uniqueId('e2e-gang-crash');
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: CRASH.control, workflowId: crashId, args: [{ runId: crashId, recipe: 'sft', config, heartbeatSeconds: 5, queues: CRASH }] });
      await waitFor(async () => (await handle.query(progressQuery)).step >= 4, 'the first checkpoint');
      const stepAtKill = (await handle.query(progressQuery)).step;
      workers[1].kill('SIGKILL');
      workers.push(await spawnComputeWorker(uniqueId('gang-rescuer'), env()));
      const result: RunResult = await handle.result();
      expect(stepAtKill).toBeLessThan(12);
      expect(result.status).toBe('completed');
      expect(await weightsSha(result)).toBe(await weightsSha(reference));
      expect(await stepsOf(crashId)).toEqual(await stepsOf(reference.runId));
      const events = (await handle.query(progressQuery)).events ?? [];
      expect(events.some((e) => e.type === 'gang-restart')).toBe(true);

      // Three ranks, two workers: the run waits and says why.
      const wideId = uniqueId('e2e-gang-wide');
      const wide = await client.workflow.start('trainingWorkflow', {
        taskQueue: CRASH.control, workflowId: wideId, args: [{ runId: wideId, recipe: 'sft', config: parseRecipeConfig('sft', { ...raw({ dp: 3 }), trainer: { ...raw().trainer, globalBatchSize: 12 } }), heartbeatSeconds: 5, queues: CRASH }],
      });
      try {
        await waitFor(async () => /2 of 3 ranks placed/.test((await wide.query(progressQuery)).waiting ?? ''), 'the wait status');
        const p = await wide.query(progressQuery);
        expect(p.status).toBe('waiting');
        expect(p.waiting).toMatch(/waiting for compute workers on \S+: 2 of 3 ranks placed \(parallel dp=3 tp=1 pp=1, one worker process per rank\)/);
      } finally {
        // Whatever happened, it must not go on taking the next tests' workers.
        await wide.terminate('test over').catch(() => undefined);
      }
    } finally {
      for (const w of workers) w.kill('SIGTERM');
    }
  }, 600_000);

  slowIt('TP=2 and PP=2 gangs train the same steps as one worker (to float rounding) and save one checkpoint that loads unsplit; ZeRO-1 at DP=2 is bit for bit', async () => {
    const refId = uniqueId('e2e-gang-ref2');
    const reference: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: REF.control, workflowId: refId, args: [{ runId: refId, recipe: 'sft', config: parseRecipeConfig('sft', raw()), heartbeatSeconds: 5, queues: REF }] });
    const want = await stepsOf(refId);
    const workers: ChildProcess[] = await Promise.all([spawnComputeWorker(uniqueId('gang-c'), env()), spawnComputeWorker(uniqueId('gang-d'), env())]);
    try {
      for (const parallel of [{ tp: 2 }, { pp: 2 }, { dp: 2, shardOptimizer: true }]) {
        const id = uniqueId(`e2e-gang-${Object.keys(parallel).join('')}`);
        const result: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: CRASH.control, workflowId: id, args: [{ runId: id, recipe: 'sft', config: parseRecipeConfig('sft', raw(parallel)), heartbeatSeconds: 5, queues: CRASH }] });
        expect(result.status).toBe('completed');
        const got = await stepsOf(id);
        expect(got.map((x) => x[0])).toEqual(want.map((x) => x[0]));
        got.forEach((row, i) => expect(Math.abs(row[1] - want[i][1])).toBeLessThan(1e-4)); // the losses
        expect(Math.abs(result.validations.at(-1)!.loss - reference.validations.at(-1)!.loss)).toBeLessThan(1e-4);
        if ('shardOptimizer' in parallel) expect(await weightsSha(result)).toBe(await weightsSha(reference));
        // The export is one ordinary model folder whatever the layout.
        const { loadPretrained } = await import('../../models/pretrained.js');
        const model = await loadPretrained(path.join(tmp, 'store', 'runs', id, 'export'));
        expect(model.parameters().length).toBeGreaterThan(0);
        model.dispose();
      }
    } finally {
      for (const w of workers) w.kill('SIGTERM');
    }
  }, 600_000);

  slowIt('a reward model at DP=2 (a sequence classifier): the gang\'s checkpoints are the one worker\'s, bit for bit', async () => {
    const rmRaw = (parallel?: Record<string, unknown>) => ({
      model: tinyLlama, data: { train: writeLines(path.join(tmp, 'rm'), 'rm.jsonl', rewardPairs(96)), validationFraction: 0.2, overlong: 'drop' },
      trainer: { ...raw().trainer, maxSteps: 8, globalBatchSize: 8, microBatchSize: 4 },
      ...(parallel ? { parallel } : {}),
    });
    const refId = uniqueId('e2e-gang-rm-ref');
    const reference: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: REF.control, workflowId: refId, args: [{ runId: refId, recipe: 'rm', config: parseRecipeConfig('rm', rmRaw()), heartbeatSeconds: 5, queues: REF }] });
    const workers: ChildProcess[] = await Promise.all([spawnComputeWorker(uniqueId('gang-e'), env()), spawnComputeWorker(uniqueId('gang-f'), env())]);
    try {
      const id = uniqueId('e2e-gang-rm');
      const result: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: CRASH.control, workflowId: id, args: [{ runId: id, recipe: 'rm', config: parseRecipeConfig('rm', rmRaw({ dp: 2 })), heartbeatSeconds: 5, queues: CRASH }] });
      expect(result.status).toBe('completed');
      expect(await weightsSha(result)).toBe(await weightsSha(reference));
      expect(await stepsOf(id)).toEqual(await stepsOf(refId));
    } finally {
      for (const w of workers) w.kill('SIGTERM');
    }
  }, 600_000);
});
