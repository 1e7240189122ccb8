/**
 * Orchestration overhead: the same SFT run (tiny fixture Llama, 200 steps) as a plain in-process
 * loop, and as a Temporal workflow with real activities, a filesystem store and a checkpoint
 * every 50 steps. Reports both wall times and the overhead as a percentage.
 *
 *   npm run bench -- overhead [--steps 200] [--address HOST:PORT]
 * Without --address/TEMPORAL_ADDRESS it starts a headless dev server from .tools for the run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { parseRecipeConfig } from '../algorithms/recipes/index.js';
import { readJsonl } from '../algorithms/data/jsonl.js';
import { tokenizeSft } from '../algorithms/data/sft.js';
import { sft } from '../algorithms/recipes/sft.js';
import type { SftConfig } from '../algorithms/recipes/sft.js';
import { arraySource, optimizerStep } from '../algorithms/train/runner.js';
import { RunStore } from '../store/run-store.js';
import { newOptimizer } from '../activities/training-state.js';
import { openStore } from '../store/index.js';
import { connectTemporal } from '../infra/temporal.js';
import { startWorkers } from '../infra/workers/worker.js';
import { loadPretrained } from '../models/pretrained.js';
import { Tokenizer } from '../models/tokenizer.js';
import { CONTROL_QUEUE } from '../workflows/training.js';

export const help = `bench overhead: wall time of a 200-step SFT run, plain loop vs Temporal with checkpoints every 50 steps.
Options:
  --steps N          training steps (default 200)
  --address H:P      an existing Temporal server (default TEMPORAL_ADDRESS, else a temporary dev server)`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const model = path.join(root, 'models/fixtures/tiny-llama');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function devServer(dir: string): Promise<{ address: string; stop: () => void }> {
  const port = await freePort();
  const bin = path.join(root, '.tools/temporal-venv/bin/temporal');
  const child = spawn(bin, ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--db-filename', path.join(dir, 't.db'), '--log-level', 'error'], { stdio: 'ignore' });
  const address = `127.0.0.1:${port}`;
  for (let i = 0; i < 60; i++) {
    try {
      const c = await connectTemporal(address, { timeoutMs: 1000 });
      await c.close();
      return { address, stop: () => child.kill('SIGTERM') };
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`bench overhead: the Temporal dev server (${bin}) did not start on ${address}; run \`bash infra/setup.sh\``);
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({ args: argv, options: { steps: { type: 'string', default: '200' }, address: { type: 'string' } } });
  const steps = Number(values.steps);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-overhead-'));
  const corpus = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds/doc-7.json');
  const train = path.join(dir, 'sft.jsonl');
  writeFileSync(train, (JSON.parse(readFileSync(corpus, 'utf8')) as string[]).slice(0, 256).map((s) => JSON.stringify({ input: `Q: ${s.slice(0, 30)}`, output: 'Sure, here it is.' })).join('\n'));
  const config = parseRecipeConfig('sft', {
    model, data: { train, validationFraction: 0.1 },
    trainer: { maxSteps: steps, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 50, valEvery: 0, continueAsNewEvery: 50, maxLength: 96 },
  });

  // Plain loop: tokenize, load, train; no orchestration, no checkpoints.
  let t0 = performance.now();
  const tok = Tokenizer.fromDir(model);
  const data = arraySource((await readJsonl(train)).map((r) => tokenizeSft(tok, r, train, { maxLength: 96 })!));
  const m = await loadPretrained(model);
  const ctx = { model: m, opt: newOptimizer(m, config.trainer), trainer: config.trainer, config: config as SftConfig, seed: config.seed };
  for (let s = 0; s < steps; s++) await optimizerStep(sft, ctx, data, null, s);
  const plain = (performance.now() - t0) / 1000;
  m.dispose();
  process.stderr.write(`  plain loop: ${plain.toFixed(2)} s\n`);

  // The same run through Temporal, with in-process workers and a filesystem store.
  const server = values.address || process.env.TEMPORAL_ADDRESS ? null : await devServer(dir);
  const address = values.address ?? process.env.TEMPORAL_ADDRESS ?? server!.address;
  const store = new RunStore(openStore(`file://${path.join(dir, 'store')}`), path.join(dir, 'cache'));
  const workers = await startWorkers({ address, store, role: 'all', workerId: `overhead-${process.pid}` });
  const client = new Client({ connection: await connectTemporal(address) });
  try {
    const runId = `overhead-${Date.now()}`;
    t0 = performance.now();
    const result = await client.workflow.execute('trainingWorkflow', { taskQueue: CONTROL_QUEUE, workflowId: runId, args: [{ runId, recipe: 'sft', config }] });
    const temporal = (performance.now() - t0) / 1000;
    if (process.env.ALIGN_BENCH_TIMELINE) {
      const h = await client.workflow.getHandle(runId).fetchHistory();
      let prev = 0;
      const times = (h.events ?? []).map((e) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6));
      process.stderr.write(`  history span ${times.at(-1)! - times[0]} ms of ${(temporal * 1000).toFixed(0)} ms\n`);
      for (const e of h.events ?? []) {
        const t = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name ?? '';
        process.stderr.write(`  +${prev ? t - prev : 0}ms ${String(e.eventType)} ${name}\n`);
        prev = t;
      }
    }
    process.stderr.write(`  through Temporal: ${temporal.toFixed(2)} s (step ${result.step})\n`);
    return {
      bench: 'overhead', steps, checkpoints: Math.floor(steps / 50), plain_s: +plain.toFixed(3), temporal_s: +temporal.toFixed(3),
      overhead_pct: +((100 * (temporal - plain)) / plain).toFixed(2), target_pct: 5,
    };
  } finally {
    await workers.shutdown();
    await client.connection.close();
    server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
