/** Shared pieces of the end-to-end tests: synthetic datasets, worker processes, run configs. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, it } from 'vitest';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const tinyLlama = path.join(root, 'models/fixtures/tiny-llama');

/** Slow end-to-end tests run in CI; ALIGN_SKIP_SLOW=1 skips them locally. */
export const slowIt = process.env.ALIGN_SKIP_SLOW ? it.skip : it;

function sentences(doc: number): string[] {
  const dir = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds');
  return JSON.parse(readFileSync(path.join(dir, `doc-${doc}.json`), 'utf8')) as string[];
}

/** SFT data: questions about sentences, always answered in one house style. */
export function writeSftData(dir: string, n: number): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'sft.jsonl');
  writeFileSync(file, sentences(7).slice(0, n).map((s) => JSON.stringify({ input: `Q: ${s.slice(0, 30)}`, output: 'Sure, here it is.' })).join('\n'));
  return file;
}

/** Synthetic preferences: the lower-case answer is chosen over the upper-case one (NeMo-Aligner format). */
export function writePreferenceData(dir: string, n: number): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'dpo.jsonl');
  writeFileSync(file, sentences(8).slice(0, n).map((s) => {
    const text = s.slice(0, 24);
    return JSON.stringify({ prompt: 'Answer: ', chosen_response: text.toLowerCase(), rejected_response: text.toUpperCase() });
  }).join('\n'));
  return file;
}

/** A compute worker in its own process (so that a test can kill -9 it). */
export function spawnComputeWorker(id: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'infra/workers/main.ts'), '--role', 'compute', '--id', id], {
    cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker ${id} did not start: ${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('"worker-started"')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`worker ${id} exited with ${code}: ${out}`)));
  });
}

/** A JSONL file of the given lines. */
export function writeLines(dir: string, name: string, lines: readonly string[]): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** A config with its relative path values (model, data, prompts, reward function) made absolute: the API server's folder is not the caller's. */
export function withAbsolutePaths(config: unknown): Record<string, unknown> {
  const abs = (v: unknown, key: string): unknown => {
    if (typeof v === 'string' && ['model', 'train', 'data', 'prompts', 'function'].includes(key) && !v.includes('://')) return path.resolve(root, v);
    if (v && typeof v === 'object' && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, abs(x, k)]));
    return v;
  };
  return abs(config, '') as Record<string, unknown>;
}

/** Polls `get` until `done` holds, or fails after `ms` showing the last value. */
export async function until<T>(what: string, get: () => Promise<T>, done: (x: T) => boolean, ms = 240_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const x = await get();
    if (done(x)) return x;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(x).slice(0, 400)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The next unique id with a prefix (run ids, worker ids). */
export const uniqueId = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

/**
 * The fixture of the end-to-end suites that crash workers: a temp filesystem store, an in-process
 * worker for the reference runs (REF queues) and a control-only worker for runs whose compute
 * workers are processes a test kills (CRASH queues), and a client. Call at the top of a test file.
 */
export function crashFixture(name: string) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `aligner-${name}-`));
  const storeUri = `file://${path.join(tmp, 'store')}`;
  const store = openStore(storeUri);
  const f = {
    tmp, storeUri, store, runStore: new RunStore(store, path.join(tmp, 'cache')),
    REF: { control: `align-control-${name}`, compute: `align-cpu-${name}` },
    CRASH: { control: `align-control-${name}-crash`, compute: `align-cpu-${name}-crash` },
    client: null as unknown as Client,
  };
  let workers: RunningWorkers[] = [];
  beforeAll(async () => {
    const address = defaultTemporalAddress();
    f.client = new Client({ connection: await connectTemporal(address) });
    workers = await Promise.all([
      startWorkers({ address, store: f.runStore, role: 'all', workerId: uniqueId(name), queues: f.REF }),
      startWorkers({ address, store: f.runStore, role: 'control', queues: f.CRASH }),
    ]);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.shutdown()));
    await f.client?.connection.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  return f;
}
