/**
 * Pipelines under faults, and schedules, on the real Temporal server with real activities:
 *  - kill -9 of the compute worker in the middle of a data stage and in the middle of a training
 *    stage: each stage continues on another worker (the data stage redoes only its unfinished
 *    shard), and no earlier stage runs again (checked from the stage records and Temporal);
 *  - a stage that fails (its run terminated) fails the pipeline naming the stage; `resume` skips
 *    the completed stages and continues the failed one from its newest checkpoint; resume works
 *    from the store's record after Temporal has dropped the failed execution;
 *  - a schedule with a short interval runs two rounds, the second starting from the first's output
 *    (through the schedule's lineage), and pause stops the third; a failed round shows in describe;
 *  - bad input (an invalid cron expression, an unknown pipeline, a bad stage value) fails before
 *    anything starts.
 */
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, onTestFinished } from 'vitest';
import { getPipeline } from '../../algorithms/pipelines/index.js';
import { ConfigError } from '../../algorithms/errors.js';
import { pipelineRecordKey } from '../../activities/pipeline/plan.js';
import type { PipelineRecord } from '../../activities/pipeline/types.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { PipelineService } from '../../infra/pipelines.js';
import type { PipelineView } from '../../infra/pipelines.js';
import { RunService } from '../../infra/runs.js';
import { ScheduleService } from '../../infra/schedules.js';
import { startWorkers } from '../../infra/workers/worker.js';
import { ScheduleSpecError } from '../../infra/schedule-spec.js';
import { listCheckpoints } from '../../store/checkpoints.js';
import { crashFixture, root, slowIt, spawnComputeWorker, uniqueId } from './helpers.js';

const fixture = crashFixture('pipeline-faults');
const { tmp, storeUri, store, REF, CRASH } = fixture;
const env = { TEMPORAL_ADDRESS: defaultTemporalAddress(), ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${CRASH.control},${CRASH.compute}` };

const runService = (queues = REF) => new RunService({ address: defaultTemporalAddress(), storeUri, queues });
const services: RunService[] = [];
const pipelines = (queues = REF) => {
  const r = runService(queues);
  services.push(r);
  return new PipelineService(r);
};
afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
});

async function waitFor(what: string, when: () => Promise<boolean>, ms = 180_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await when()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function finished(svc: PipelineService, id: string): Promise<PipelineView> {
  let v!: PipelineView;
  await waitFor(`pipeline ${id} to close`, async () => (v = await svc.status(id)).state !== 'RUNNING', 300_000);
  return v;
}

const stage = (r: PipelineRecord, name: string) => r.stages.find((s) => s.name === name)!;
const fileOf = (key: string) => path.join(tmp, 'store', key);
const marker = (runId: string, k: number) => fileOf(`runs/${runId}/output/part-${String(k).padStart(5, '0')}.json`);

/** Executions Temporal has of a workflow id (a stage run again would have a second). */
async function executionsOf(workflowId: string): Promise<number> {
  let n = 0;
  for await (const _ of fixture.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) n++;
  return n;
}

/** Iterative DPO, one round, sampling in 6 shards and training long enough to be killed midway. */
const faultConfig = () => {
  const ex = getPipeline('iterative-dpo').example as Record<string, Record<string, unknown>>;
  return {
    ...ex, rounds: 1,
    sampling: { ...ex.sampling, promptsPerRound: 48, shardPrompts: 8 },
    dpo: { ...ex.dpo, trainer: { ...(ex.dpo.trainer as object), maxSteps: 24, checkpointEvery: 4, valEvery: 24 } },
  };
};

describe('pipelines under faults', () => {
  slowIt('kill -9 mid data stage and mid training stage: each stage continues elsewhere, no earlier stage runs again', async () => {
    const svc = pipelines(CRASH);
    const procs: ChildProcess[] = [await spawnComputeWorker(uniqueId('pf-a'), env)];
    try {
      const id = uniqueId('pf-kill');
      await svc.start('iterative-dpo', faultConfig(), [], { pipelineId: id, baseDir: root, heartbeatSeconds: 2 });
      const pairs = `${id}.pairs-1`, dpo = `${id}.dpo-1`;
      // Mid data stage: two shards committed, the rest not.
      // Shards are taken in any order: wait for two of the six to commit.
      const committed = () => [0, 1, 2, 3, 4, 5].filter((k) => existsSync(marker(pairs, k)));
      await waitFor('two committed shards', async () => committed().length >= 2);
      procs[0].kill('SIGKILL');
      const done = committed();
      const committedAt = done.map((k) => statSync(marker(pairs, k)).mtimeMs);
      procs.push(await spawnComputeWorker(uniqueId('pf-b'), env));
      // Mid training stage: the DPO run has committed a checkpoint and goes on.
      await waitFor('a DPO checkpoint', async () => (await listCheckpoints(store, dpo).catch(() => [])).length > 0);
      procs[1].kill('SIGKILL');
      procs.push(await spawnComputeWorker(uniqueId('pf-c'), env));
      const v = await finished(svc, id);
      expect(v.state, v.failure?.message).toBe('COMPLETED');
      const r = v.record!;
      // The shards committed before the kill were not redone; all six are there.
      expect(done.map((k) => statSync(marker(pairs, k)).mtimeMs)).toEqual(committedAt);
      expect(committed()).toEqual([0, 1, 2, 3, 4, 5]);
      expect(stage(r, 'pairs-1').output!.records).toBeGreaterThan(0);
      // Every stage ran as one child run, once: the kills were absorbed inside the stage they hit.
      for (const s of r.stages) {
        expect(s.runId).toBe(`${id}.${s.name}`);
        expect(s.failedRuns).toEqual([]);
        expect(s.attempt).toBe(0);
        expect(await executionsOf(s.runId!)).toBe(1);
      }
      // The DPO run continued from its checkpoint: it has all its checkpoints up to the last step.
      expect((await listCheckpoints(store, dpo))[0].step).toBe(24);
    } finally {
      for (const p of procs) p.kill('SIGKILL');
    }
  }, 600_000);

  slowIt('a failed stage fails the pipeline naming it; resume skips the completed stages and continues the failed one from its checkpoint', async () => {
    // A worker of its own with two slots: the terminated run keeps its slot until the idle timeout.
    const queues = { control: `${REF.control}-resume`, compute: `${REF.compute}-resume` };
    const worker = await startWorkers({ address: defaultTemporalAddress(), store: fixture.runStore, role: 'all', workerId: uniqueId('pf-resume'), queues, slots: 2 });
    onTestFinished(() => worker.shutdown());
    const svc = pipelines(queues);
    const id = uniqueId('pf-resume');
    await svc.start('iterative-dpo', faultConfig(), [], { pipelineId: id, baseDir: root });
    const dpo = `${id}.dpo-1`;
    await waitFor('a DPO checkpoint', async () => (await listCheckpoints(store, dpo).catch(() => [])).length > 0);
    await svc.runs.terminate(dpo, 'test: the stage dies');
    const failed = await finished(svc, id);
    expect(failed.state).toBe('FAILED');
    expect(failed.failure!.message).toMatch(/stage dpo-1 \(dpo, run .*dpo-1\) failed/);
    expect(failed.failure!.message).toContain(`align pipeline resume ${id}`);
    expect(stage(failed.record!, 'dpo-1').error).toMatch(/terminated/);
    const pairsDoneAt = stage(failed.record!, 'pairs-1').output!;

    const resumed = await svc.resume(id);
    expect(resumed).toMatchObject({ attempt: 1, skipped: ['pairs-1'], resumes: 'dpo-1' });
    const v = await finished(svc, id);
    expect(v.state, v.failure?.message).toBe('COMPLETED');
    const r = v.record!;
    expect(r.attempt).toBe(1);
    // pairs-1 was not run again: the same run, once, with the same output.
    expect(stage(r, 'pairs-1')).toMatchObject({ runId: `${id}.pairs-1`, attempt: 0, failedRuns: [] });
    expect(stage(r, 'pairs-1').output).toEqual(pairsDoneAt);
    expect(await executionsOf(`${id}.pairs-1`)).toBe(1);
    // dpo-1 ran again as a new run that continued from the terminated run's checkpoint.
    const d = stage(r, 'dpo-1');
    expect(d).toMatchObject({ runId: `${dpo}.r1`, failedRuns: [dpo], attempt: 1 });
    expect(d.resumedFrom!.runId).toBe(dpo);
    expect(d.resumedFrom!.step).toBeGreaterThanOrEqual(4);
    expect((await runService(queues).getStatus(`${dpo}.r1`)).parentRunId).toBe(dpo);
    expect(stage(r, 'final-reward').state).toBe('completed');
    // The record in the store is the one the status shows.
    expect(JSON.parse((await store.get(pipelineRecordKey(id))).toString()).state).toBe('completed');
  }, 600_000);

  slowIt('resume after Temporal dropped the failed execution (past retention): rebuilt from the store\'s record', async () => {
    const svc = pipelines();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-retention-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const prompts = path.join(dir, 'prompts.jsonl');
    const good = readFileSync(path.join(root, 'data/demo/prompts.jsonl'), 'utf8');
    writeFileSync(prompts, `${good.split('\n')[0]}\n{"prompt": \n`); // line 2 is not JSON
    const ex = getPipeline('rs').example as Record<string, Record<string, unknown>>;
    const config = { ...ex, rounds: 1, rs: { ...ex.rs, data: { train: prompts }, trainer: { ...(ex.rs.trainer as object), maxSteps: 1 } } };
    const id = uniqueId('pf-retention');
    await svc.start('rs', config, [], { pipelineId: id, baseDir: root });
    const failed = await finished(svc, id);
    expect(failed.state).toBe('FAILED');
    expect(failed.failure!.message).toMatch(/prompts\.jsonl:2/);
    writeFileSync(prompts, good);
    await fixture.client.workflowService.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: id } });
    await waitFor('Temporal to forget the pipeline', async () => svc.status(id).then(() => false, () => true), 60_000);
    expect(await svc.resume(id)).toMatchObject({ attempt: 1, skipped: [], resumes: 'rs-1' });
    const v = await finished(svc, id);
    expect(v.state, v.failure?.message).toBe('COMPLETED');
    expect(stage(v.record!, 'rs-1')).toMatchObject({ state: 'completed', failedRuns: [`${id}.rs-1`] });
    await expect(svc.resume(id)).rejects.toThrow(/completed; there is nothing to resume/);
  }, 300_000);
});

describe('schedules', () => {
  /** One rejection-sampling round: one iteration, a few prompts. */
  const roundConfig = (prompts = path.join(root, 'data/demo/prompts.jsonl')) => {
    const ex = getPipeline('rs').example as Record<string, Record<string, unknown>>;
    return { ...ex, rounds: 1, rs: { ...ex.rs, data: { train: prompts }, trainer: { ...(ex.rs.trainer as object), maxSteps: 1 } } };
  };

  slowIt('a schedule with a short interval runs two rounds, the second from the first\'s output; pause stops the third', async () => {
    const schedules = new ScheduleService(runService());
    services.push(schedules.runs);
    const name = uniqueId('sched-rs');
    await schedules.create(name, { pipeline: 'rs', every: '3s', config: roundConfig(), baseDir: root });
    try {
      await waitFor('the second round to start', async () => (await schedules.describe(name)).recent.length >= 2, 300_000);
      await schedules.pause(name);
      await waitFor('two completed rounds', async () => (await schedules.describe(name)).completed.length >= 2, 300_000);
      await new Promise((r) => setTimeout(r, 7_000)); // more than two intervals: a third would have started
      const d = await schedules.describe(name);
      expect(d.paused).toBe(true);
      expect(d.recent).toHaveLength(2);
      expect(d.recent.every((x) => x.state === 'COMPLETED')).toBe(true);
      expect(d.completed.map((c) => c.round)).toEqual([1, 2]);
      // Round 2 started from round 1's output model, found through the lineage.
      const svc = pipelines();
      const [r1, r2] = await Promise.all(d.completed.map(async (c) => (await svc.status(c.pipelineId)).record!));
      expect(r1.start.model).toBe(path.join(root, 'models/fixtures/tiny-llama'));
      expect(r2.start).toEqual({ model: r1.output!.model, round: 2 });
      expect(stage(r2, 'rs-1').inputs).toEqual([]); // its model came from the lineage, not from a stage of its own
      console.log(`schedule ${name}: rounds ${d.completed.map((c) => `${c.round} → ${c.model}`).join('; ')}`);
    } finally {
      await schedules.delete(name);
    }
  }, 600_000);

  slowIt('a failed round pauses nothing and is visible in describe', async () => {
    const schedules = new ScheduleService(runService());
    services.push(schedules.runs);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-sched-'));
    const prompts = path.join(dir, 'prompts.jsonl');
    copyFileSync(path.join(root, 'data/demo/prompts.jsonl'), prompts);
    const name = uniqueId('sched-fail');
    await schedules.create(name, { pipeline: 'rs', every: '1h', config: roundConfig(prompts), baseDir: root, paused: true });
    try {
      rmSync(prompts); // the round's data disappears after the schedule was made
      await schedules.trigger(name);
      await waitFor('the round to fail', async () => (await schedules.describe(name)).recent[0]?.state === 'FAILED', 120_000);
      const d = await schedules.describe(name);
      expect(d.recent[0].failure).toMatch(/prompts\.jsonl/);
      expect(d.completed).toEqual([]);
      expect(d.paused).toBe(true); // as created: the failure changed nothing
    } finally {
      await schedules.delete(name);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  slowIt('bad input fails before anything starts: an invalid cron expression, an unknown pipeline, a bad stage value', async () => {
    const schedules = new ScheduleService(runService());
    services.push(schedules.runs);
    const name = uniqueId('sched-bad');
    await expect(schedules.create(name, { pipeline: 'rs', cron: '61 * * * *', config: roundConfig(), baseDir: root })).rejects.toThrow(ScheduleSpecError);
    await expect(schedules.create(name, { pipeline: 'rs', cron: '61 * * * *', config: roundConfig(), baseDir: root })).rejects.toThrow(/minute 61 is out of range 0-59/);
    await expect(schedules.create(name, { pipeline: 'nope', every: '1h', config: {}, baseDir: root })).rejects.toThrow(/unknown pipeline "nope"/);
    await expect(schedules.create(name, { pipeline: 'rs', every: '6', config: roundConfig(), baseDir: root })).rejects.toThrow(/say the unit/);
    expect((await schedules.list()).map((s) => s.name)).not.toContain(name);
    const svc = pipelines();
    const bad = { ...roundConfig(), rs: { ...roundConfig().rs, trainer: { lr: -1 } } };
    await expect(svc.start('rs', bad, [], { baseDir: root })).rejects.toThrow(ConfigError);
    await expect(svc.start('rs', bad, [], { baseDir: root })).rejects.toThrow(/stage "rs-1" \(rs\).*trainer\.lr/s);
    await expect(svc.start('iterative-dpo', { ...getPipeline('iterative-dpo').example, sampling: { prompts: 'no/such.jsonl' } }, [], { baseDir: root })).rejects.toThrow(/sampling\.prompts: no such file/);
  }, 120_000);
});
