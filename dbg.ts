import path from 'node:path';
import { Client } from '@temporalio/client';
import { getRecipe, parseRecipeConfig } from './algorithms/recipes/index.js';
import { connectTemporal, defaultTemporalAddress } from './infra/temporal.js';
import { startWorkers } from './infra/workers/worker.js';
import { openStore } from './store/index.js';
import { RunStore } from './store/run-store.js';
import { progressQuery } from './workflows/training.js';
const root = '/work/main';
const tmp = `/tmp/smoke/dbg-${Date.now()}`;
const store = new RunStore(openStore(`file://${tmp}/store`), `${tmp}/cache`);
const Q = { control: 'dbg-control', compute: 'dbg-cpu' };
const address = defaultTemporalAddress();
const w = await startWorkers({ address, store, role: 'all', workerId: 'dbg', queues: Q });
const client = new Client({ connection: await connectTemporal(address) });
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
try { const r = await h.result(); console.log('done', (Date.now() - t0) / 1000, r.validations.map((v) => v.metrics.reward.toFixed(2))); } catch (e) { console.error('FAILED', e); }
clearInterval(timer);
await w.shutdown(); await client.connection.close();
