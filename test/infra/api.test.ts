/**
 * The HTTP API with fastify's inject() (plus one request over a real socket), against the real
 * Temporal dev server of the global setup, with the real training workflow and mocked activities
 * (test/workflows/fake-activities.ts) served by workers in this process on task queues of their
 * own. Covers auth (401), start → status → pause → resume → cancel → list, bad bodies and invalid
 * configs (400 naming the field, nothing started), unknown runs (404), resume-failed with
 * lineage, export, and an unreachable Temporal server (503 naming the address).
 */
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../infra/api/server.js';
import { AllowedRoots } from '../../infra/allowed-roots.js';
import { RunService } from '../../infra/runs.js';
import { writeCheckpoint } from '../../store/checkpoints.js';
import { openStore } from '../../store/index.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startTemporal } from '../../infra/dev-stack.js';
import { freePort } from '../../infra/services.js';
import { loadPretrained } from '../../models/pretrained.js';
import { startFakeWorkers, type Script } from '../workflows/fake-activities.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'models/fixtures/tiny-llama');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-api-test-'));
const storeUri = `file://${path.join(tmp, 'store')}`;
const suffix = `${process.pid}-${Date.now()}`;
const queues = { control: `api-test-control-${suffix}`, compute: `api-test-cpu-${suffix}` };
const TOKEN = 'test-token-0123456789';
const READ_TOKEN = 'read-only-token-9876543210';
const auth = { authorization: `Bearer ${TOKEN}` };
/** What the fake activities do; tests change it between runs (workers read it at each call). */
const script: Script = {};
const config = {
  model: path.join(root, 'models/fixtures/tiny-llama'), data: { train: path.join(root, 'data/demo/sft.jsonl') },
  trainer: { maxSteps: 10, checkpointEvery: 2, valEvery: 4, warmupSteps: 0, maxLength: 128 },
};
let client: Client;
let fake: Awaited<ReturnType<typeof startFakeWorkers>>;
let calls: { name: string; args: unknown }[];
let service: RunService;
let app: FastifyInstance;

beforeAll(async () => {
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  fake = await startFakeWorkers(defaultTemporalAddress(), queues, script);
  calls = fake.calls;
  service = new RunService({ address: defaultTemporalAddress(), storeUri, queues });
  // The repository (models, demo data) and this test's folder (store, exports); a read-only token too.
  app = buildApi({ service, token: TOKEN, tokens: [{ token: READ_TOKEN, scope: 'read' }], allowedRoots: new AllowedRoots([root, tmp]) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await service?.close();
  await fake?.stop();
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
});

const count = async (query: string) => (await client.workflow.count(query)).count;
const startedOnOurQueue = () => count(`TaskQueue = '${queues.control}'`);

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, tries = 50): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const get = async (url: string) => (await app.inject({ method: 'GET', url, headers: auth })).json();
const post = (url: string, payload?: object) => app.inject({ method: 'POST', url, headers: auth, ...(payload ? { payload } : {}) });

describe('HTTP API (real Temporal server, mocked activities)', () => {
  it('401 without a token or with a wrong one, on every route', async () => {
    for (const [method, url] of [['GET', '/runs'], ['GET', '/runs/x'], ['GET', '/runs/x/metrics'], ['GET', '/runs/x/rollouts'], ['GET', '/runs/x/checkpoints'], ['POST', '/runs'], ['POST', '/runs/x/pause'], ['POST', '/runs/x/export']] as const) {
      const none = await app.inject({ method, url });
      expect(none.statusCode, `${method} ${url}`).toBe(401);
      expect(none.json()).toEqual({ error: 'Unauthorized', message: 'missing bearer token: send "Authorization: Bearer <token>"' });
      expect(none.headers['www-authenticate']).toBe('Bearer');
      const wrong = await app.inject({ method, url, headers: { authorization: `Bearer ${TOKEN}x` } });
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json()).toEqual({ error: 'Unauthorized', message: 'invalid bearer token' });
    }
    expect((await app.inject({ method: 'GET', url: '/runs', headers: { authorization: TOKEN } })).statusCode).toBe(401); // no scheme
  });

  it('a read token reads (runs, recipes) but cannot start, pause, cancel or schedule: 403, nothing started', async () => {
    const read = { authorization: `Bearer ${READ_TOKEN}` };
    const before = await startedOnOurQueue();
    expect((await app.inject({ method: 'GET', url: '/runs', headers: read })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/recipes', headers: read })).statusCode).toBe(200);
    for (const [url, payload] of [['/runs', { recipe: 'sft', config }], ['/runs/any/pause', undefined], ['/runs/any/cancel', undefined], ['/schedules', { name: 'x', pipeline: 'rs', every: '1h', config: {} }]] as const) {
      const res = await app.inject({ method: 'POST', url, headers: read, ...(payload ? { payload } : {}) });
      expect(res.statusCode, url).toBe(403);
      expect(res.json().message).toContain('needs a token of scope operate');
    }
    expect((await app.inject({ method: 'DELETE', url: '/schedules/x', headers: read })).statusCode).toBe(403);
    expect(await startedOnOurQueue()).toBe(before);
  });

  it('configs and exports must point under the allowed roots: /etc/passwd, another bucket, ../ and a symlink out are 400s naming the field; nothing is started', async () => {
    const before = await startedOnOurQueue();
    const link = path.join(tmp, 'escape');
    symlinkSync('/etc', link);
    const refused = [
      [{ ...config, data: { train: '/etc/passwd' } }, 'data.train'],
      [{ ...config, data: { train: `${root}/${path.relative(root, '/etc/passwd')}` } }, 'data.train'],
      // Missing and outside: refused as outside, so the server never says what exists there.
      [{ ...config, data: { train: `${root}/../../etc/passwd` } }, 'data.train'],
      [{ ...config, data: { train: '/no/such/secret.jsonl' } }, 'data.train'],
      [{ ...config, data: { train: path.join(link, 'passwd') } }, 'data.train'],
      [{ ...config, model: 's3://other-bucket/models/llama/' }, 'model'],
    ] as const;
    for (const [c, field] of refused) {
      const res = await post('/runs', { recipe: 'sft', config: c });
      expect(res.statusCode, JSON.stringify(c)).toBe(400);
      expect(res.json().message).toMatch(new RegExp(`^${field.replace('.', '\\.')}: .* is outside the folders and stores this server may read and write`));
      expect(res.json().message).not.toContain('root:x:0:0');
    }
    const exp = await post('/runs/any-run/export', { outDir: '/etc/aligner-export' });
    expect(exp.statusCode).toBe(400);
    expect(exp.json().message).toMatch(/^body\.outDir: \/etc\/aligner-export is outside/);
    expect(await startedOnOurQueue()).toBe(before);
  });

  it('413 for a body over the limit; nothing is started', async () => {
    const before = await startedOnOurQueue();
    const res = await post('/runs', { recipe: 'sft', config: { ...config, padding: 'x'.repeat(1 << 20) } });
    expect(res.statusCode).toBe(413);
    expect(await startedOnOurQueue()).toBe(before);
  });

  it('GET /recipes lists the table; GET /recipes/:name gives its roles, metrics, config schema and example; an unknown one is a 400 listing the recipes', async () => {
    const list = await get('/recipes') as { recipes: { name: string; kind: string; summary: string }[] };
    expect(list.recipes.map((r) => r.name)).toEqual(['sft', 'dpo', 'rm', 'kd', 'kto', 'steerlm2', 'ppo', 'reinforce', 'grpo', 'rs']);
    const kd = await get('/recipes/kd') as Record<string, unknown> & { configSchema: { properties: Record<string, unknown> }; exampleYaml: string };
    expect(kd).toMatchObject({ name: 'kd', kind: 'offline', headline: { metric: 'teacherKl', better: 'lower' }, precompute: { name: 'teacher-topk', role: 'teacher' } });
    expect(Object.keys(kd.configSchema.properties)).toEqual(['model', 'seed', 'data', 'trainer', 'cost', 'budget', 'tracking', 'parallel', 'lora', 'kd']);
    expect(kd.exampleYaml).toMatch(/^# align run kd /);
    const bad = await app.inject({ method: 'GET', url: '/recipes/sftt', headers: auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toBe('params.name must be one of: sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs');
  });

  it('start → status → pause → resume → cancel → list', async () => {
    script.chunkMs = 300;
    try {
      const runId = `api-flow-${suffix}`;
      const res = await post('/runs', { recipe: 'sft', config, set: ['trainer.maxSteps=200'], runId });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toEqual({ runId, recipe: 'sft' });
      expect(res.headers.location).toBe(`/runs/${runId}`);
      expect(await get(`/runs/${runId}`)).toMatchObject({ runId, recipe: 'sft', state: 'RUNNING', parentRunId: null, progress: { maxSteps: 200 } });

      const paused = await post(`/runs/${runId}/pause`);
      expect([paused.statusCode, paused.json()]).toEqual([202, { runId, requested: 'pause' }]);
      const held = await until('paused', () => get(`/runs/${runId}`), (v) => v.progress?.status === 'paused');
      await new Promise((r) => setTimeout(r, 800));
      expect((await get(`/runs/${runId}`)).progress.step).toBe(held.progress.step);

      expect((await post(`/runs/${runId}/resume`)).statusCode).toBe(202);
      await until('training again', () => get(`/runs/${runId}`), (v) => v.progress?.step > held.progress.step);
      expect((await post(`/runs/${runId}/cancel`)).json()).toEqual({ runId, requested: 'cancel' });
      const final = await until('stopped', () => get(`/runs/${runId}`), (v) => v.state === 'STOPPED'); // a graceful stop, not COMPLETED
      expect(final.result).toMatchObject({ status: 'stopped', exportUri: null });

      const list = await until('listed', () => get('/runs?limit=100'), (v) => v.runs.some((r: { runId: string }) => r.runId === runId));
      expect(list.runs).toContainEqual(expect.objectContaining({ runId, recipe: 'sft', state: 'STOPPED' }));
      const starts = list.runs.map((r: { startTime: string }) => r.startTime);
      expect(starts).toEqual([...starts].sort().reverse()); // newest first

      const late = await post(`/runs/${runId}/pause`);
      expect([late.statusCode, late.json()]).toEqual([409, { error: 'RunStateError', message: `cannot pause run ${runId}: it is completed` }]);
    } finally {
      delete script.chunkMs;
    }
  });

  it('terminate ends a stuck run at once (202), as TERMINATED with the reason; a closed run gives 409', async () => {
    script.chunkMs = 300;
    try {
      const runId = `api-terminate-${suffix}`;
      expect((await post('/runs', { recipe: 'sft', config, set: ['trainer.maxSteps=200'], runId })).statusCode).toBe(201);
      const res = await post(`/runs/${runId}/terminate`, { reason: 'worker pool drained' });
      expect([res.statusCode, res.json()]).toEqual([202, { runId, requested: 'terminate' }]);
      const view = await get(`/runs/${runId}`);
      expect(view).toMatchObject({ state: 'TERMINATED', result: null, failure: { type: 'TerminatedFailure', message: 'worker pool drained' } });
      expect((await post(`/runs/${runId}/terminate`)).statusCode).toBe(409);
    } finally {
      delete script.chunkMs;
    }
  });

  it('400 naming the field for a bad body, an invalid config value or an unknown key; nothing is started', async () => {
    const before = await startedOnOurQueue();
    const cases: [object, number, object][] = [
      [{ config }, 400, { error: 'ValidationError', message: 'body.recipe is required', fields: ['body.recipe'] }],
      [{ recipe: 'sftt', config }, 400, { error: 'ValidationError', message: 'body.recipe must be one of: sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs', fields: ['body.recipe'] }],
      [{ recipe: 'sft', config, extra: 1 }, 400, { error: 'ValidationError', message: 'body.extra is not a known field', fields: ['body.extra'] }],
      [{ recipe: 'sft', config: 'sft.yaml' }, 400, { error: 'ValidationError', message: 'body.config must be object', fields: ['body.config'] }],
      [{ recipe: 'sft', config, set: ['trainer.lr'] }, 400, { error: 'ValidationError', message: 'body.set.0 must look like key.path=value', fields: ['body.set.0'] }],
      [{ recipe: 'sft', config, set: ['trainer.lr=-1'] }, 400, { error: 'ConfigError', message: 'invalid sft config:\n  trainer.lr: Too small: expected number to be >0' }],
      [{ recipe: 'sft', config: { ...config, trainer: { lr: -1 } } }, 400, { error: 'ConfigError', message: 'invalid sft config:\n  trainer.lr: Too small: expected number to be >0' }],
      [{ recipe: 'sft', config: { ...config, trainer: { lrr: 1 } } }, 400, { error: 'ConfigError', message: 'invalid sft config:\n  trainer: unknown key(s) "lrr"' }],
      [{ recipe: 'dpo', config: { ...config, dpo: { beta: 0 } } }, 400, { error: 'ConfigError', message: 'invalid dpo config:\n  dpo.beta: Too small: expected number to be >0' }],
      [{ recipe: 'sft', config, runId: 'has space' }, 400, { error: 'UsageError', message: expect.stringContaining('invalid run id "has space"') }],
    ];
    for (const [i, [body, status, error]] of cases.entries()) {
      const runId = `api-bad-${suffix}-${i}`;
      const payload = 'runId' in body ? body : { ...body, runId };
      const res = await post('/runs', payload);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
      expect(res.json(), JSON.stringify(body)).toEqual(error);
      expect(await count(`WorkflowId = '${runId}'`)).toBe(0);
    }
    const bad = await app.inject({ method: 'POST', url: '/runs', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"recipe":' });
    expect(bad.statusCode).toBe(400);
    expect(await startedOnOurQueue()).toBe(before);
  });

  it('404 for an unknown run, 400 for a malformed run id', async () => {
    const missing = await app.inject({ method: 'GET', url: '/runs/no-such-run', headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'RunNotFoundError', message: expect.stringContaining('no run "no-such-run"') });
    for (const op of ['pause', 'resume', 'cancel', 'resume-failed']) expect((await post(`/runs/no-such-run/${op}`)).statusCode, op).toBe(404);
    const exp = await post('/runs/no-such-run/export', { outDir: path.join(tmp, 'nothing') });
    expect(exp.statusCode).toBe(404);
    expect(exp.json().message).toContain('no run "no-such-run"');
    expect((await app.inject({ method: 'GET', url: '/runs/bad..id%20x', headers: auth })).statusCode).toBe(400);
  });

  it('resume-failed: 201 with a new run resumed from the last valid checkpoint, lineage recorded; 409 for a completed run', async () => {
    const failed = `api-failed-${suffix}`;
    script.dataError = 'train.jsonl:7: missing key "output"';
    try {
      expect((await post('/runs', { recipe: 'sft', config, runId: failed })).statusCode).toBe(201);
      const view = await until('the failure', () => get(`/runs/${failed}`), (v) => v.state === 'FAILED');
      expect(view.failure).toMatchObject({ type: 'DataError', message: 'train.jsonl:7: missing key "output"', activity: 'prepareDataset' });
    } finally {
      delete script.dataError;
    }
    const none = await post(`/runs/${failed}/resume-failed`);
    expect(none.statusCode).toBe(404);
    expect(none.json().message).toContain('has no valid checkpoint');

    const ref = await writeCheckpoint(openStore(storeUri), failed, 6, readdirSync(fixture).map((name) => ({ name, path: path.join(fixture, name) })));
    const res = await post(`/runs/${failed}/resume-failed`, { runId: `api-resumed-${suffix}` });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toEqual({ runId: `api-resumed-${suffix}`, parentRunId: failed, resumeFrom: { uri: ref.uri, step: 6, sha256: ref.sha256 }, skipped: [] });
    const done = await until('the resumed run', () => get(`/runs/api-resumed-${suffix}`), (v) => v.state === 'COMPLETED');
    expect(done).toMatchObject({ parentRunId: failed, result: { status: 'completed', step: 10 } });
    expect(calls.map((c) => c.args)).toContainEqual({ from: 6, to: 8, checkpoint: 6 });

    const again = await post(`/runs/api-resumed-${suffix}/resume-failed`);
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toContain('completed, it did not fail');
  });

  it('export writes the checkpoint\'s model files to a server-side folder', async () => {
    const runId = `api-export-${suffix}`;
    await writeCheckpoint(openStore(storeUri), runId, 3, [
      ...readdirSync(fixture).map((name) => ({ name, path: path.join(fixture, name) })),
      { name: 'optimizer.safetensors', bytes: new Uint8Array(16) },
    ]);
    const outDir = path.join(tmp, 'api-export');
    const res = await post(`/runs/${runId}/export`, { outDir });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ runId, step: 3, outDir, files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'], skipped: [] });
    (await loadPretrained(outDir)).dispose();
    const relative = await post(`/runs/${runId}/export`, { outDir: 'out' });
    expect([relative.statusCode, relative.json().message]).toEqual([400, 'body.outDir must be an absolute path on the API server, got "out"']);
    const badStep = await post(`/runs/${runId}/export`, { outDir, step: -1 });
    expect([badStep.statusCode, badStep.json().fields]).toEqual([400, ['body.step']]);
  });

  it('GET /runs/:id/checkpoints lists committed checkpoints newest first with files, sizes and hashes; a read token may; an unknown run is a 404', async () => {
    const runId = `api-checkpoints-${suffix}`;
    const store = openStore(storeUri);
    await writeCheckpoint(store, runId, 2, [{ name: 'a.bin', bytes: new Uint8Array([1, 2, 3]) }]);
    const ref = await writeCheckpoint(store, runId, 4, [{ name: 'a.bin', bytes: new Uint8Array([1, 2, 3, 4]) }, { name: 'b/c.json', bytes: new TextEncoder().encode('{}') }]);
    const res = await app.inject({ method: 'GET', url: `/runs/${runId}/checkpoints`, headers: { authorization: `Bearer ${READ_TOKEN}` } });
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json().checkpoints;
    expect(list.map((c: { step: number }) => c.step)).toEqual([4, 2]);
    // sha256('\x01\x02\x03\x04') and sha256('{}'), computed independently.
    expect(list[0]).toMatchObject({
      step: 4, uri: ref.uri, manifestSha256: ref.sha256, bytes: 6,
      files: [
        { name: 'a.bin', size: 4, sha256: '9f64a747e1b97f131fabb6b447296c9b6f0201e79fb3c5356e6c77e89b6a806a' },
        { name: 'b/c.json', size: 2, sha256: '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' },
      ],
    });
    expect(typeof list[0].createdAt).toBe('string');
    expect((await app.inject({ method: 'GET', url: `/runs/no-such-run-${suffix}/checkpoints`, headers: auth })).statusCode).toBe(404);
  });

  it('the dashboard\'s files are served without a token, with a strict CSP; nothing else is', async () => {
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('/dashboard/app.js');
    for (const url of ['/dashboard/app.js', '/dashboard/vendor/uPlot.iife.min.js', '/dashboard/style.css']) expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    for (const url of ['/dashboard/../package.json', '/dashboard/%2e%2e/package.json', '/dashboard/vendor/../../infra/runs.ts', '/dashboard/nope.js']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(401); // not a dashboard file: an API route, which needs the token
    }
    expect((await app.inject({ method: 'POST', url: '/' })).statusCode).toBe(401);
  });

  it('serves a real socket', async () => {
    const server = buildApi({ service, token: TOKEN });
    try {
      const url = await server.listen({ port: 0, host: '127.0.0.1' });
      const ok = await fetch(`${url}/runs?limit=1`, { headers: auth });
      expect(ok.status).toBe(200);
      expect(Array.isArray(((await ok.json()) as { runs: unknown[] }).runs)).toBe(true);
      expect((await fetch(`${url}/runs`)).status).toBe(401);
    } finally {
      await server.close();
    }
  });

  it('503 within seconds when the Temporal server goes away after the API connected (kill -9), naming it', async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'aligner-api-down-'));
    const server = await startTemporal({ stateDir, temporalPort: await freePort(), headless: true, detached: false });
    const svc = new RunService({ address: server.address, storeUri });
    const api = buildApi({ service: svc, token: TOKEN });
    try {
      expect((await api.inject({ method: 'GET', url: '/runs', headers: auth })).statusCode).toBe(200);
      process.kill(server.pid!, 'SIGKILL');
      const t0 = Date.now();
      const res = await api.inject({ method: 'GET', url: '/runs', headers: auth });
      console.log(`API answer after the Temporal server died: ${res.statusCode} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(res.statusCode).toBe(503);
      expect(res.json().message).toContain(server.address);
    } finally {
      await api.close();
      await svc.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('503 naming the address when the Temporal server is unreachable', async () => {
    const down = new RunService({ address: '127.0.0.1:1', storeUri, connectTimeoutMs: 1000 });
    const api = buildApi({ service: down, token: TOKEN });
    try {
      for (const [method, url, payload] of [['GET', '/runs', undefined], ['POST', '/runs', { recipe: 'sft', config }]] as const) {
        const res = await api.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });
        expect(res.statusCode).toBe(503);
        expect(res.json()).toEqual({ error: 'TemporalUnavailableError', message: expect.stringMatching(/^cannot reach the Temporal server at 127\.0\.0\.1:1 .*npm run stack$/) });
      }
      // An invalid config is still reported as such: it is checked before connecting.
      const bad = await api.inject({ method: 'POST', url: '/runs', headers: auth, payload: { recipe: 'sft', config, set: ['trainer.lr=-1'] } });
      expect(bad.statusCode).toBe(400);
    } finally {
      await api.close();
      await down.close();
    }
  });
});
