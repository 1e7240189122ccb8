/**
 * The `align` CLI as a user runs it: child processes (`node --import tsx infra/cli/main.ts …`)
 * against the real Temporal dev server of the global setup, with the real training workflow and
 * mocked activities (test/workflows/fake-activities.ts) served by workers in this process on task
 * queues of their own. Covers start → status → pause → resume → cancel → list, an attached run
 * with its summary, bad input rejected before anything starts (exit 2), an unreachable server
 * (exit 3, naming the address), resume-failed with lineage, and export to a folder that
 * loadPretrained loads.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../infra/cli/program.js';
import { RunService, type RunView } from '../../infra/runs.js';
import { parseRecipeConfig, RECIPE_NAMES, RECIPES } from '../../algorithms/recipes/index.js';
import YAML from 'yaml';
import { writeCheckpoint } from '../../store/checkpoints.js';
import { writeMetricsChunk } from '../../store/metrics-ledger.js';
import { openStore } from '../../store/index.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { loadPretrained } from '../../models/pretrained.js';
import { startFakeWorkers, type Script } from '../workflows/fake-activities.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'models/fixtures/tiny-llama');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-cli-test-'));
const storeUri = `file://${path.join(tmp, 'store')}`;
const suffix = `${process.pid}-${Date.now()}`;
const queues = { control: `cli-test-control-${suffix}`, compute: `cli-test-cpu-${suffix}` };
/** What the fake activities do; tests change it between runs (workers read it at each call). */
const script: Script = {};
let client: Client;
let fake: Awaited<ReturnType<typeof startFakeWorkers>>;
let calls: { name: string; args: unknown }[];
/** In-process view of the same runs, for waiting between CLI calls (a CLI call takes ~2 s). */
let service: RunService;

beforeAll(async () => {
  service = new RunService({ address: defaultTemporalAddress(), storeUri, queues });
  client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
  fake = await startFakeWorkers(defaultTemporalAddress(), queues, script);
  calls = fake.calls;
  // A config file as a user writes it: YAML, with paths relative to the current folder.
  writeFileSync(path.join(tmp, 'sft.yaml'), [
    'model: models/fixtures/tiny-llama', 'data:', '  train: data/demo/sft.jsonl',
    'trainer:', '  maxSteps: 10', '  checkpointEvery: 2', '  valEvery: 4', '  warmupSteps: 0', '  maxLength: 128', '',
  ].join('\n'));
});
afterAll(async () => {
  await service?.close();
  await fake?.stop();
  await client?.connection.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `align` as a child process, with this file's queues and store unless `plain`. */
function align(args: string[], opts: { plain?: boolean } = {}): Promise<Result> {
  const globals = opts.plain ? [] : ['--queues', `${queues.control},${queues.compute}`, '--store', storeUri];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'infra/cli/main.ts', ...globals, ...args], { cwd: root, env: { ...process.env, ALIGN_DEBUG: '' } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const json = (r: Result) => JSON.parse(r.stdout.trim().split('\n').at(-1)!);
const count = async (query: string) => (await client.workflow.count(query)).count;

async function until(what: string, runId: string, ok: (v: RunView) => boolean, tries = 100): Promise<RunView> {
  for (let i = 0; i < tries; i++) {
    const v = await service.getStatus(runId);
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('align CLI (real Temporal server, mocked activities)', () => {
  it('start (detached) → status → pause → resume → cancel → list', async () => {
    script.chunkMs = 400;
    try {
      const runId = `cli-flow-${suffix}`;
      const started = await align(['--json', 'run', 'sft', '--config', path.join(tmp, 'sft.yaml'), '--set', 'trainer.maxSteps=200', '--detach', '--run-id', runId]);
      expect(started.code, started.stderr).toBe(0);
      expect(json(started)).toEqual({ runId, recipe: 'sft' });

      const status = await align(['--json', 'status', runId]);
      expect(status.code, status.stderr).toBe(0);
      expect(json(status)).toMatchObject({ runId, recipe: 'sft', state: 'RUNNING', progress: { maxSteps: 200 } });

      const paused = await align(['pause', runId]);
      expect(paused.code, paused.stderr).toBe(0);
      expect(paused.stdout).toContain(`pause requested: run ${runId}`);
      const held = (await until('the paused status', runId, (v) => v.progress?.status === 'paused')).progress!.step;
      await new Promise((r) => setTimeout(r, 800));
      const text = await align(['status', runId]);
      expect(text.stdout).toContain(`run ${runId} (sft)  RUNNING · paused`);
      expect(text.stdout).toContain(`step       ${held}/200`); // held while paused

      expect((await align(['resume', runId])).code).toBe(0);
      await until('training again', runId, (v) => v.progress!.step > held);

      const cancelled = await align(['cancel', runId]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      await until('the stopped run', runId, (v) => v.state === 'STOPPED'); // a graceful stop, not COMPLETED
      const final = json(await align(['--json', 'status', runId]));
      expect(final.result).toMatchObject({ status: 'stopped', exportUri: null });
      expect(final.result.step).toBeLessThan(200);

      const list = await align(['--json', 'list', '--limit', '50']);
      expect(list.code, list.stderr).toBe(0);
      expect(json(list)).toContainEqual(expect.objectContaining({ runId, recipe: 'sft', state: 'STOPPED', parentRunId: null }));
      const table = await align(['list', '--limit', '50']);
      expect(table.stdout).toMatch(new RegExp(`^${runId}\\s+sft\\s+STOPPED`, 'm'));

      // A closed run cannot be paused: exit 2 and a message saying why.
      const late = await align(['pause', runId]);
      expect(late.code).toBe(2);
      expect(late.stderr.trim()).toBe(`align: error: cannot pause run ${runId}: it is completed`);
    } finally {
      delete script.chunkMs;
    }
  });

  it('an attached run shows progress and ends with a summary: metrics, loss curve, checkpoint and export', async () => {
    const r = await align(['run', 'sft', '--config', path.join(tmp, 'sft.yaml'), '--run-id', `cli-attached-${suffix}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`started run cli-attached-${suffix} (sft)`);
    expect(r.stderr).toMatch(/sft .* 10\/10 \| loss 0\.1 \|/); // the bar's last line (fake loss 1/step)
    expect(r.stdout).toContain(`run cli-attached-${suffix} completed: 10/10 steps`);
    expect(r.stdout).toMatch(/loss\s+1 → 0\.1\s+[▁▂▃▄▅▆▇█]{10}/);
    expect(r.stdout).toContain('validation loss 0.5 (step 10)');
    expect(r.stdout).toContain('checkpoint file:///runs/x/checkpoints/10');
    expect(r.stdout).toContain('export     file:///runs/x/export');
  });

  it.each([
    ['an invalid value', ['--set', 'trainer.lr=-1'], 'align: error: invalid sft config: trainer.lr: Too small: expected number to be >0'],
    ['an unknown key', ['--set', 'trainer.lrr=0.1'], 'align: error: invalid sft config: trainer: unknown key(s) "lrr"'],
    ['a missing data file', ['--set', 'data.train=nope.jsonl'], `align: error: data.train: no such file or folder: ${path.join(root, 'nope.jsonl')}`],
  ])('rejects %s before anything starts (exit 2, one line)', async (_what, set, message) => {
    const runId = `cli-bad-${suffix}-${Math.floor(Math.random() * 1e6)}`;
    const r = await align(['run', 'sft', '--config', path.join(tmp, 'sft.yaml'), ...set, '--run-id', runId]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${message}\n`);
    expect(await count(`WorkflowId = '${runId}'`)).toBe(0);
  });

  it('run --help and recipes list every recipe of the table in one line each; config prints a runnable commented YAML', async () => {
    const help = await align(['run', '--help']);
    const list = await align(['recipes']);
    for (const name of RECIPE_NAMES) {
      expect(help.stdout).toMatch(new RegExp(`\\n  ${name} +(offline|online) +\\S`));
      expect(list.stdout).toMatch(new RegExp(`^  ${name} +(offline|online) +${RECIPES[name].summary.slice(0, 20).replace(/[()]/g, '.')}`, 'm'));
    }
    const one = await align(['recipes', 'kd']);
    expect(one.stdout).toContain('teacher    runs once over the data');
    expect(one.stdout).toContain('headline   teacherKl (lower is better)');
    const config = await align(['config', 'kd']);
    expect(config.code).toBe(0);
    expect(parseRecipeConfig('kd', YAML.parse(config.stdout)).kd).toMatchObject({ topK: 16, loss: 'fwd_kl', kdWeight: 1, sftWeight: 0 });
    expect(config.stdout).toContain('# Teacher logits kept per token');
    const unknown = await align(['config', 'sftt']);
    expect([unknown.code, unknown.stderr]).toEqual([2, 'align: error: unknown recipe "sftt"; available: sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs (align recipes lists them)\n']);
  });

  it('rejects an unknown recipe, a missing config file and bad arguments with exit 2', async () => {
    const recipe = await align(['run', 'sftt', '--config', path.join(tmp, 'sft.yaml')]);
    expect([recipe.code, recipe.stderr]).toEqual([2, 'align: error: unknown recipe "sftt"; available: sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs (align recipes lists them)\n']);
    const asJson = await align(['--json', 'run', 'sftt']);
    expect([asJson.code, JSON.parse(asJson.stderr)]).toEqual([2, { error: { kind: 'usage', type: 'ConfigError', message: 'unknown recipe "sftt"; available: sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs (align recipes lists them)' } }]);
    const missing = await align(['run', 'sft', '--config', 'missing.yaml']);
    expect([missing.code, missing.stderr]).toEqual([2, `align: error: config file not found: ${path.join(root, 'missing.yaml')}\n`]);
    const step = await align(['export', 'some-run', '--step', 'last', '--out', path.join(tmp, 'x')]);
    expect([step.code, step.stderr]).toEqual([2, "align: error: option '--step <n>' argument 'last' is invalid. expected a non-negative integer.\n"]);
    const unknown = await align(['status', 'no-such-run']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no run "no-such-run" in Temporal namespace "default"');
  });

  it('an unreachable Temporal server: exit 3, the address and the hint, no stack trace', async () => {
    const r = await align(['--address', '127.0.0.1:1', 'status', 'any-run'], { plain: true });
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^align: error: cannot reach the Temporal server at 127\.0\.0\.1:1 .*npm run stack\n$/);
  });

  it('a worker started with a bad Temporal address or role: one line naming it, no stack trace', async () => {
    const worker = (args: string[]) => new Promise<Result>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'infra/workers/main.ts', ...args], { cwd: root, env: { ...process.env, ALIGN_STORE_URI: storeUri } });
      let stdout = '', stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    const far = await worker(['--address', '127.0.0.1:1']);
    expect(far.code).toBe(3);
    expect(far.stderr).toMatch(/^worker: cannot reach the Temporal server at 127\.0\.0\.1:1 .*\(--address or TEMPORAL_ADDRESS\)\n$/);
    const role = await worker(['--role', 'gpu-please']);
    expect(role.code).toBe(2);
    expect(role.stderr).toBe('worker: --role must be all, control or compute, got gpu-please\n');
  });

  it('resume-failed starts a new run from the last valid checkpoint, with lineage', async () => {
    script.dataError = 'train.jsonl:3: missing key "output"';
    const failed = `cli-failed-${suffix}`;
    let r: Result;
    try {
      r = await align(['run', 'sft', '--config', path.join(tmp, 'sft.yaml'), '--run-id', failed]);
    } finally {
      delete script.dataError;
    }
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`run ${failed} failed at step 0: DataError: train.jsonl:3: missing key "output" (in activity prepareDataset)`);

    // Nothing to resume yet: it wrote no checkpoint.
    const none = await align(['resume-failed', failed]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`run ${failed} has no valid checkpoint in ${storeUri} to resume from`);

    // Checkpoints at steps 4 and 6, the newer one corrupted: resume from 4.
    const store = openStore(storeUri);
    const files = readdirSync(fixture).map((name) => ({ name, path: path.join(fixture, name) }));
    const good = await writeCheckpoint(store, failed, 4, files);
    await writeCheckpoint(store, failed, 6, files);
    writeFileSync(path.join(tmp, 'store/runs', failed, 'checkpoints/6/model.safetensors'), 'rot');

    const resumed = await align(['--json', 'resume-failed', failed, '--detach']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const out = json(resumed);
    expect(out).toMatchObject({ parentRunId: failed, resumeFrom: { step: 4, uri: good.uri, sha256: good.sha256 } });
    expect(out.skipped).toEqual([expect.objectContaining({ step: 6, reason: expect.stringContaining('model.safetensors') })]);
    await until('the resumed run to finish', out.runId, (v) => v.state !== 'RUNNING');
    const view = json(await align(['--json', 'status', out.runId]));
    expect(view).toMatchObject({ state: 'COMPLETED', parentRunId: failed, progress: { parentRunId: failed }, result: { status: 'completed', step: 10 } });
    const chunks = calls.filter((c) => c.name === 'trainChunk').map((c) => c.args as { from: number; checkpoint: number | null });
    expect(chunks).toContainEqual({ from: 4, to: 6, checkpoint: 4 }); // started from the checkpoint, not from 0

    const list = json(await align(['--json', 'list', '--limit', '50']));
    expect(list).toContainEqual(expect.objectContaining({ runId: out.runId, parentRunId: failed }));
    const again = await align(['resume-failed', out.runId]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('completed, it did not fail');
  });

  it('a run with no compute worker polling its queue says so in status within seconds, naming the queue', async () => {
    const nobody = `nobody-polls-${suffix}`;
    const lonely = new RunService({ address: defaultTemporalAddress(), storeUri, queues: { control: queues.control, compute: nobody } });
    try {
      const { runId } = await lonely.startRun('sft', YAML.parse(readFileSync(path.join(tmp, 'sft.yaml'), 'utf8')), [], { detach: true, baseDir: root });
      const v = await until('the run to wait for a worker', runId, () => true);
      let text = '';
      for (let i = 0; i < 50 && !text.includes('none is polling'); i++) {
        text = (await align(['--queues', `${queues.control},${nobody}`, '--store', storeUri, 'status', runId], { plain: true })).stdout;
      }
      expect(v.state).toBe('RUNNING');
      expect(text).toContain(`waiting for a compute worker on ${nobody}: none is polling; start one with npx tsx infra/workers/main.ts`);
      await lonely.cancel(runId);
    } finally {
      await lonely.close();
    }
  });

  it('metrics charts the ledger\'s full history (small losses in significant digits), as CSV and JSON; an unknown run exits 2', async () => {
    const runId = `cli-ledger-${suffix}`;
    const store = openStore(storeUri);
    const row = (step: number) => ({ type: 'step' as const, step, loss: 0.002 / step, lr: 1e-4, gradNorm: 0.5, tokens: 100, metrics: { reward: step / 10 } });
    await writeMetricsChunk(store, runId, { fromStep: 0, toStep: 20, parent: null }, Array.from({ length: 20 }, (_, i) => row(i + 1)));
    await writeMetricsChunk(store, runId, { fromStep: 20, toStep: 40, parent: null }, Array.from({ length: 20 }, (_, i) => row(i + 21)));
    const text = await align(['metrics', runId]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`run ${runId}: 40 steps in the metrics ledger`);
    expect(text.stdout).toMatch(/loss {11}0\.002 → 0\.00005\n/);
    expect(text.stdout).toContain('step 1 … 40');
    expect(text.stdout).toMatch(/reward {9}0\.1 → 4 /);
    const csv = await align(['metrics', runId, '--from', '39', '--csv']);
    expect(csv.stdout.trim().split('\n')).toEqual(['step,loss,lr,gradNorm,tokens,reward', `39,${0.002 / 39},0.0001,0.5,100,3.9`, '40,0.00005,0.0001,0.5,100,4']);
    expect(json(await align(['--json', 'metrics', runId, '--to', '2'])).steps.map((x: { step: number }) => x.step)).toEqual([1, 2]);
    const unknown = await align(['metrics', `no-such-run-${suffix}`]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no-such-run');
  });

  it('export writes a Hugging Face folder (model files only, verified) that loadPretrained loads', async () => {
    const runId = `cli-export-${suffix}`;
    const store = openStore(storeUri);
    const files = [
      ...readdirSync(fixture).map((name) => ({ name, path: path.join(fixture, name) })),
      { name: 'optimizer.safetensors', bytes: new Uint8Array(64) },
      { name: 'trainer_state.json', bytes: Buffer.from('{"step":8}') },
    ];
    await writeCheckpoint(store, runId, 4, files);
    await writeCheckpoint(store, runId, 8, files);

    const out = path.join(tmp, 'export-latest');
    const r = await align(['export', runId, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`wrote run ${runId} at step 8 to ${out}: config.json, model.safetensors, tokenizer.json, tokenizer_config.json`);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
    expect(sha(path.join(out, 'model.safetensors'))).toBe(sha(path.join(fixture, 'model.safetensors')));
    const model = await loadPretrained(out);
    expect(model.config.vocabSize).toBeGreaterThan(0);
    model.dispose();

    const step4 = await align(['--json', 'export', runId, '--step', '4', '--out', path.join(tmp, 'export-4')]);
    expect(json(step4)).toMatchObject({ step: 4, files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'] });
    const again = await align(['export', runId, '--out', out]);
    expect([again.code, again.stderr]).toEqual([2, `align: error: export folder ${out} is not empty; choose a new --out folder\n`]);
    const noStep = await align(['export', runId, '--step', '5', '--out', path.join(tmp, 'export-5')]);
    expect([noStep.code, noStep.stderr]).toEqual([2, `align: error: run ${runId} has no checkpoint at step 5 in ${storeUri}; its checkpoints: steps 8, 4\n`]);
  });

  it('bin/align runs the CLI, and every command\'s --help explains its arguments with an example', async () => {
    const r = await new Promise<Result>((resolve) => {
      const child = spawn(path.join(root, 'bin/align'), ['--help'], { cwd: os.tmpdir() });
      let stdout = '', stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: align [options] [command]');
    const program = buildProgram({ exitCode: 0, json: false });
    expect(program.commands.map((c) => c.name()).sort()).toEqual(['cancel', 'config', 'export', 'generate', 'list', 'metrics', 'pause', 'pipeline', 'recipes', 'resume', 'resume-failed', 'rollouts', 'run', 'schedule', 'status', 'terminate']);
    // Every command and every subcommand (align pipeline run, align schedule create, …).
    const all = program.commands.flatMap((c) => [{ cmd: c, path: c.name() }, ...c.commands.map((s) => ({ cmd: s, path: `${c.name()} ${s.name()}` }))]);
    for (const { cmd, path: name } of all) {
      let help = '';
      cmd.configureOutput({ writeOut: (s) => (help += s) });
      cmd.outputHelp();
      expect(help, name).toMatch(/Example/);
      expect(help, name).toContain(`$ align ${name}`);
      // Help wraps long descriptions: compare with runs of whitespace as one space.
      for (const arg of cmd.registeredArguments) expect(help.replace(/\s+/g, ' '), `${name} <${arg.name()}>`).toContain(arg.description);
    }
  });
});
