/**
 * Pipelines and schedules through the HTTP API and the `align` CLI, on the real Temporal server
 * with real activities and the tiny fixture model: SPIN started with POST /pipelines and followed
 * with GET /pipelines/:id; a schedule created, described, triggered, paused and deleted over HTTP;
 * `align pipeline run` followed to its end and `align pipeline status`; bad input as 400 / exit 2.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import YAML from 'yaml';
import { getPipeline } from '../../algorithms/pipelines/index.js';
import { buildApi } from '../../infra/api/server.js';
import { RunService } from '../../infra/runs.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { crashFixture, root, slowIt, uniqueId, until, withAbsolutePaths } from './helpers.js';

const fixture = crashFixture('pipeline-api');
const { tmp, storeUri, REF } = fixture;
const TOKEN = 'pipeline-api-token-0123';
const auth = { authorization: `Bearer ${TOKEN}` };
let service: RunService;
let app: FastifyInstance;

beforeAll(async () => {
  service = new RunService({ address: defaultTemporalAddress(), storeUri, queues: REF });
  app = buildApi({ service, token: TOKEN });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await service?.close();
});

/** The example config with every relative path made absolute. */
const exampleConfig = (name: string) => withAbsolutePaths(getPipeline(name).example);

function align(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'infra/cli/main.ts'), '--store', storeUri, '--queues', `${REF.control},${REF.compute}`, ...args], { cwd: root, env: process.env });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

describe('pipelines over HTTP', () => {
  slowIt('POST /pipelines starts SPIN; GET /pipelines/:id shows the stage tree until it completes', async () => {
    const id = uniqueId('api-spin');
    const post = await app.inject({ method: 'POST', url: '/pipelines', headers: auth, payload: { pipeline: 'spin', config: exampleConfig('spin'), set: ['rounds=1'], pipelineId: id } });
    expect(post.statusCode, post.body).toBe(201);
    expect(post.json()).toMatchObject({ pipelineId: id, pipeline: 'spin', stages: ['generations-1', 'dpo-1'] });
    const view = await until('SPIN to complete', async () => (await app.inject({ method: 'GET', url: `/pipelines/${id}`, headers: auth })).json(), (v) => v.state !== 'RUNNING');
    expect(view.state, JSON.stringify(view.failure)).toBe('COMPLETED');
    const [gen, dpo] = view.record.stages;
    expect(gen).toMatchObject({ name: 'generations-1', kind: 'data', what: 'spin-pairs', state: 'completed', runId: `${id}.generations-1` });
    expect(gen.output.metrics.pairs).toBeGreaterThan(0);
    expect(dpo).toMatchObject({ name: 'dpo-1', kind: 'run', what: 'dpo', state: 'completed' });
    expect(dpo.inputs).toEqual([gen.output.data]);
    console.log(`spin: ${gen.output.summary}; dpo-1: ${dpo.output.summary}`);
    // The stage run's metrics ledger over HTTP: every step once, its validations; a range; 401 and 404.
    const metrics = (await app.inject({ method: 'GET', url: `/runs/${dpo.runId}/metrics`, headers: auth })).json();
    expect(metrics.steps.map((x: { step: number }) => x.step)).toEqual(Array.from({ length: metrics.steps.length }, (_, i) => i + 1));
    expect(metrics.steps.length).toBeGreaterThan(0);
    expect(metrics.validations.map((v: { step: number }) => v.step)).toContain(0);
    expect(metrics.lineage).toEqual([{ runId: dpo.runId, fromStep: 0, toStep: metrics.steps.length }]);
    const tail = (await app.inject({ method: 'GET', url: `/runs/${dpo.runId}/metrics?from=2&to=3`, headers: auth })).json();
    expect(tail.steps.map((x: { step: number }) => x.step)).toEqual([2, 3]);
    expect((await app.inject({ method: 'GET', url: `/runs/${dpo.runId}/metrics` })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/runs/no-such-run/metrics', headers: auth })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/runs/${dpo.runId}/metrics?from=-1`, headers: auth })).statusCode).toBe(400);
    const list = (await app.inject({ method: 'GET', url: '/pipelines?limit=50', headers: auth })).json();
    expect(list.pipelines.map((p: { pipelineId: string }) => p.pipelineId)).toContain(id);
  }, 300_000);

  slowIt('schedules over HTTP: create (paused), trigger a round, describe its lineage, pause, delete; an invalid cron is a 400 naming it', async () => {
    const name = uniqueId('api-sched');
    const rs = exampleConfig('rs') as { rs: Record<string, unknown> };
    const config = { ...rs, rounds: 1, rs: { ...rs.rs, trainer: { ...(rs.rs.trainer as object), maxSteps: 1 } } };
    const bad = await app.inject({ method: 'POST', url: '/schedules', headers: auth, payload: { name, pipeline: 'rs', cron: '* * 32 * *', config } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/day-of-month 32/);
    const unknownField = await app.inject({ method: 'POST', url: '/schedules', headers: auth, payload: { name, pipeline: 'rs', every: '1h', config, bogus: 1 } });
    expect(unknownField.statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: `/schedules/${name}`, headers: auth })).statusCode).toBe(404);
    const long = await app.inject({ method: 'POST', url: '/schedules', headers: auth, payload: { name: 'r'.repeat(65), pipeline: 'rs', every: '1h', config } });
    expect(long.statusCode).toBe(400);
    expect(long.json().message).toMatch(/65 characters; at most 64/);

    const created = await app.inject({ method: 'POST', url: '/schedules', headers: auth, payload: { name, pipeline: 'rs', every: '1h', config, paused: true } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name, pipeline: 'rs', spec: 'every 1h' });
    try {
      expect((await app.inject({ method: 'POST', url: `/schedules/${name}/trigger`, headers: auth })).statusCode).toBe(202);
      // The round's lineage is written by its last activity, moments before its workflow closes: wait for both.
      const d = await until('a completed round', async () => (await app.inject({ method: 'GET', url: `/schedules/${name}`, headers: auth })).json(),
        (x) => x.completed?.length === 1 && x.recent?.[0]?.state !== 'RUNNING');
      expect(d).toMatchObject({ paused: true, overlap: 'skip', pipeline: 'rs' });
      expect(d.recent[0].state).toBe('COMPLETED');
      expect(d.recent[0].pipelineId).toMatch(new RegExp(`^${name}-\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\dZ$`));
      expect(d.completed[0].model).toMatch(/rs-1\/export\/$/);
      expect((await app.inject({ method: 'POST', url: `/schedules/${name}/unpause`, headers: auth })).statusCode).toBe(202);
      expect((await app.inject({ method: 'POST', url: `/schedules/${name}/pause`, headers: auth, payload: { note: 'maintenance' } })).statusCode).toBe(202);
      expect((await app.inject({ method: 'GET', url: `/schedules/${name}`, headers: auth })).json()).toMatchObject({ paused: true, note: 'maintenance' });
      // The list comes from Temporal's visibility store, which catches up within moments.
      await until('the schedule in the list', async () => (await app.inject({ method: 'GET', url: '/schedules', headers: auth })).json(),
        (l) => l.schedules.some((s: { name: string; paused: boolean }) => s.name === name && s.paused));
    } finally {
      expect((await app.inject({ method: 'DELETE', url: `/schedules/${name}`, headers: auth })).statusCode).toBe(200);
    }
  }, 300_000);
});

describe('pipelines from the CLI', () => {
  slowIt('align pipeline run follows the stages to the end; align pipeline status shows the tree; bad input exits 2', async () => {
    const file = path.join(tmp, 'rs-round.yaml');
    const rs = getPipeline('rs').example as { rs: Record<string, unknown> };
    writeFileSync(file, YAML.stringify({ ...rs, rounds: 1, rs: { ...rs.rs, trainer: { ...(rs.rs.trainer as object), maxSteps: 1 } } }));
    const id = uniqueId('cli-rs');
    const run = await align(['pipeline', 'run', 'rs', '--config', file, '--pipeline-id', id]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`started pipeline ${id}: rs-1`);
    expect(run.stderr).toMatch(/✔ rs-1 \(run rs\)/);
    expect(run.stdout).toContain(`pipeline ${id} (rs): completed`);
    const status = await align(['pipeline', 'status', id, '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).record.stages[0]).toMatchObject({ name: 'rs-1', state: 'completed' });

    const cron = await align(['schedule', 'create', uniqueId('cli-sched'), '--pipeline', 'rs', '--cron', '0 25 * * *', '--config', file]);
    expect(cron.code).toBe(2);
    expect(cron.stderr).toMatch(/hour 25 is out of range 0-23/);
    const both = await align(['schedule', 'create', uniqueId('cli-sched'), '--pipeline', 'rs', '--every', '1h', '--cron', '@daily', '--config', file]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --every/);
    const missing = await align(['pipeline', 'status', 'no-such-pipeline']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no pipeline "no-such-pipeline"/);
    const config = await align(['pipeline', 'config', 'iterative-dpo']);
    expect(config.code).toBe(0);
    expect(config.stdout).toContain('# stages: pairs-1 → dpo-1 → pairs-2 → dpo-2 → final-reward');
  }, 300_000);
});
