/**
 * Failover and queueing, through Temporal with real workers (tiny model, filesystem store):
 *  - failover: a run trains on worker process A while B waits idle; A is killed with -9; the time
 *    until the run's next training step completes on B (the default 10 s heartbeat timeout, then
 *    a placement and a reload from the last checkpoint);
 *  - queueing: 8 runs started at once on 2 workers (1 slot each) against the same 8 runs one
 *    after another on the same workers: the ratio of wall times (2 workers on a 2-core machine
 *    share the cores, so ≈ 1 means waiting added nothing).
 * Prints progress to stderr; the result is the last JSON line (bench/run.ts).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { parseRecipeConfig } from '../algorithms/recipes/index.js';
import { connectTemporal } from '../infra/temporal.js';
import { startWorkers } from '../infra/workers/worker.js';
import { openStore } from '../store/index.js';
import { RunStore } from '../store/run-store.js';
import { progressQuery, stopSignal } from '../workflows/training.js';
import { devServer } from './overhead.js';

export const help = `npm run bench -- failover [--runs 8]
  failover_s: kill -9 of the worker training a run → the run's next step done on another worker
  queue_ratio: 8 runs at once on 2 workers / the same runs one after another`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const model = path.join(root, 'models/fixtures/tiny-llama');

function spawnWorker(id: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'infra/workers/main.ts'), '--role', 'compute', '--id', id], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker ${id} did not start: ${out}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"worker-started"')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  });
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({ args: argv, options: { runs: { type: 'string', default: '8' }, address: { type: 'string' } } });
  const nRuns = Number(values.runs);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-failover-'));
  const server = values.address || process.env.TEMPORAL_ADDRESS ? null : await devServer(dir);
  const address = values.address ?? process.env.TEMPORAL_ADDRESS ?? server!.address;
  const storeUri = `file://${path.join(dir, 'store')}`;
  const queues = { control: 'align-control-bench', compute: 'align-cpu-bench' };
  const env = { TEMPORAL_ADDRESS: address, ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${queues.control},${queues.compute}` };
  const corpus = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds/doc-7.json');
  const train = path.join(dir, 'sft.jsonl');
  writeFileSync(train, (JSON.parse(readFileSync(corpus, 'utf8')) as string[]).slice(0, 80).map((s) => JSON.stringify({ input: `Q: ${s.slice(0, 30)}`, output: 'Sure, here it is.' })).join('\n'));
  const config = (steps: number) => parseRecipeConfig('sft', { model, data: { train, validationFraction: 0.1 }, trainer: { maxSteps: steps, globalBatchSize: 8, microBatchSize: 8, warmupSteps: 0, checkpointEvery: 4, valEvery: 0, maxLength: 96 } });
  const control = await startWorkers({ address, store: new RunStore(openStore(storeUri), path.join(dir, 'cache')), role: 'control', queues });
  const client = new Client({ connection: await connectTemporal(address) });
  const children: ChildProcess[] = [];
  try {
    // ---- failover
    const a = await spawnWorker('bench-a', env);
    children.push(a);
    const id = `failover-${Date.now()}`;
    const handle = await client.workflow.start('trainingWorkflow', { taskQueue: queues.control, workflowId: id, args: [{ runId: id, recipe: 'sft', config: config(400), queues }] });
    while ((await handle.query(progressQuery)).step < 8) await new Promise((r) => setTimeout(r, 50));
    children.push(await spawnWorker('bench-b', env)); // idle, with a free slot
    const atKill = (await handle.query(progressQuery)).step;
    const t0 = performance.now();
    a.kill('SIGKILL');
    // A's last chunk may still land after the query above (its result was in flight): count from
    // the chunk after that one, which only another worker can have trained.
    while ((await handle.query(progressQuery)).step <= atKill + 4) await new Promise((r) => setTimeout(r, 50));
    const failover = (performance.now() - t0) / 1000;
    process.stderr.write(`  failover: step ${atKill} → next step on another worker in ${failover.toFixed(2)} s\n`);
    await handle.signal(stopSignal); // a graceful stop gives its slot back
    await handle.result();
    children.push(await spawnWorker('bench-c', env)); // two live workers (b, c) for the queueing part

    // ---- queueing: nRuns at once vs one after another, on 2 workers
    const runOne = (name: string) => client.workflow.execute('trainingWorkflow', { taskQueue: queues.control, workflowId: name, args: [{ runId: name, recipe: 'sft', config: config(12), queues }] });
    let t = performance.now();
    for (let i = 0; i < nRuns; i++) await runOne(`seq-${Date.now()}-${i}`);
    const sequential = (performance.now() - t) / 1000;
    t = performance.now();
    await Promise.all(Array.from({ length: nRuns }, (_, i) => runOne(`par-${Date.now()}-${i}`)));
    const concurrent = (performance.now() - t) / 1000;
    process.stderr.write(`  queueing: ${nRuns} runs one after another ${sequential.toFixed(2)} s, at once on 2 workers ${concurrent.toFixed(2)} s\n`);
    return {
      bench: 'failover', cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, heartbeat_s: 10,
      failover_s: +failover.toFixed(2), target_failover_s: 15,
      runs: nRuns, sequential_s: +sequential.toFixed(2), concurrent_s: +concurrent.toFixed(2), queue_ratio: +(concurrent / sequential).toFixed(3),
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await control.shutdown();
    await client.connection.close();
    server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
