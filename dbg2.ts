import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { getRecipe, parseRecipeConfig } from './algorithms/recipes/index.js';
import { connectTemporal, defaultTemporalAddress } from './infra/temporal.js';
import { startWorkers } from './infra/workers/worker.js';
import { openStore } from './store/index.js';
import { RunStore } from './store/run-store.js';
import { partPrefix } from './store/rollout-ledger.js';
import { progressQuery } from './workflows/training.js';
import { spawnComputeWorker } from './test/e2e/helpers.js';
const root = '/work/main';
const tmp = `/tmp/smoke/dbg-${Date.now()}`;
const storeUri = `file://${tmp}/store`;
const store = new RunStore(openStore(storeUri), `${tmp}/cache`);
const Q = { control: 'dbg2-control', compute: 'dbg2-cpu' };
const address = defaultTemporalAddress();
const w = await startWorkers({ address, store, role: 'control', queues: Q });
const client = new Client({ connection: await connectTemporal(address) });
const env = { TEMPORAL_ADDRESS: address, ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${Q.control},${Q.compute}`, ALIGN_WORKER_SLOTS: '2' };
const A = await spawnComputeWorker('dbgA' + Date.now(), env);
A.stderr!.on('data', (d) => process.stderr.write('A: ' + d));
const ex = getRecipe('ppo').example as any;
const raw = { ...ex, model: path.join(root, 'models/fixtures/tiny-llama'), data: { ...ex.data, train: path.join(root, 'data/demo/prompts.jsonl') },
  trainer: { ...ex.trainer, maxSteps: 3, globalBatchSize: 16, microBatchSize: 4 },
  rollout: { ...ex.rollout, promptsPerIteration: 64, shardRows: 8, microBatch: 8, maxNewTokens: 16, stopStrings: [] },
  reward: { function: path.join(root, 'test/e2e/fixtures/slow-reward.ts') }, ppo: { ...ex.ppo, epochs: 2 } };
const config = parseRecipeConfig('ppo', raw);
const runId = `dbg-${Date.now()}`;
const t0 = Date.now();
const h = await client.workflow.start('ppoWorkflow', { taskQueue: Q.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config, queues: Q, heartbeatSeconds: 2 }] });
const timer = setInterval(async () => { try { const p = await h.query(progressQuery); console.log(((Date.now() - t0) / 1000).toFixed(1), p.status, p.step, p.stage, p.waiting); } catch {} }, 1000);
const f = path.join(tmp, 'store', partPrefix(runId, 1, 'generate', 1), 'manifest.json');
while (!existsSync(f)) await new Promise((r) => setTimeout(r, 10));
console.log('kill at', (Date.now() - t0) / 1000); A.kill('SIGKILL');
const B = await spawnComputeWorker('dbgB' + Date.now(), env);
B.stderr!.on('data', (d) => process.stderr.write('B: ' + d));
console.log('B up', (Date.now() - t0) / 1000);
try { const r = await h.result(); console.log('done', (Date.now() - t0) / 1000, r.validations.map((v) => v.metrics.reward.toFixed(2))); } catch (e) { console.error('FAILED', e); }
clearInterval(timer); B.kill();
await w.shutdown(); await client.connection.close();
