/**
 * `npm run demo`: the whole toolkit on embedded defaults. It starts the dev stack (a Temporal dev
 * server with its Web UI), runs the workers in this process, and runs two durable recipes on a
 * tiny committed model and dataset: SFT, then DPO starting from the SFT export. It shows a
 * progress bar for each run and prints where the checkpoints are and the before/after metrics.
 *
 *   npm run demo -- [--keep-stack] [--steps-sft 40] [--steps-dpo 40]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { parseRecipeConfig } from '../algorithms/recipes/index.js';
import { RunStore } from '../store/run-store.js';
import type { Progress, RunResult } from '../activities/types.js';
import { CONTROL_QUEUE, progressQuery } from '../workflows/training.js';
import { startStack, stopStack } from './dev-stack.js';
import { progressBar, sparkline } from './progress.js';
import { openStore } from '../store/index.js';
import { connectTemporal } from './temporal.js';
import { startWorkers } from './workers/worker.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    'keep-stack': { type: 'boolean', default: false },
    'steps-sft': { type: 'string', default: '40' },
    'steps-dpo': { type: 'string', default: '40' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`npm run demo -- [--keep-stack] [--steps-sft N] [--steps-dpo N]

Starts the dev stack (Temporal dev server + Web UI) under .state/, runs SFT and then DPO as
durable Temporal workflows on models/fixtures/tiny-llama and data/demo/*.jsonl, and prints
progress, checkpoints and before/after metrics. --keep-stack leaves the servers running
(stop them with: npm run stack -- stop).`);
  process.exit(0);
}

const stateDir = path.join(root, '.state');
const storeUri = `file://${path.join(stateDir, 'store')}`;
const runStore = new RunStore(openStore(storeUri), path.join(stateDir, 'input-cache'));

async function follow(client: Client, runId: string, maxSteps: number, label: string): Promise<RunResult> {
  const handle = client.workflow.getHandle(runId);
  const bar = progressBar(label, maxSteps);
  let done = false;
  const result = handle.result().finally(() => (done = true));
  while (!done) {
    const p: Progress | null = await handle.query(progressQuery).catch(() => null);
    if (p) bar.update(p.step, { loss: p.lastLoss?.toFixed(3) ?? '-', tps: p.tokensPerSecond ? Math.round(p.tokensPerSecond).toLocaleString() : '-' });
    await new Promise((r) => setTimeout(r, 300));
  }
  const r = await result;
  bar.update(r.step);
  bar.stop();
  return r;
}

const stack = await startStack({ stateDir, headless: false });
console.log(`Temporal dev server ${stack.temporal.address}${stack.temporal.uiUrl ? `, Web UI ${stack.temporal.uiUrl}` : ''}; run store ${storeUri}`);
const workers = await startWorkers({ address: stack.temporal.address, store: runStore, role: 'all', workerId: 'demo' });
const client = new Client({ connection: await connectTemporal(stack.temporal.address) });
const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);

try {
  // ---- SFT --------------------------------------------------------------------------------
  const sftSteps = Number(args['steps-sft']);
  const sft = parseRecipeConfig('sft', {
    model: path.join(root, 'models/fixtures/tiny-llama'), data: { train: path.join(root, 'data/demo/sft.jsonl'), validationFraction: 0.2 },
    trainer: { maxSteps: sftSteps, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 2, checkpointEvery: 10, valEvery: 10, maxLength: 96 },
  });
  const sftId = `demo-sft-${stamp}`;
  await client.workflow.start('trainingWorkflow', { taskQueue: CONTROL_QUEUE, workflowId: sftId, args: [{ runId: sftId, recipe: 'sft', config: sft }] });
  const sftResult = await follow(client, sftId, sftSteps, 'SFT');
  const before = sftResult.validations[0].loss; // the run validates before its first step
  const sftHistory = (await client.workflow.getHandle(sftId).query(progressQuery).catch(() => null))?.recent.map((s) => s.loss) ?? [];
  console.log(`SFT  validation loss ${before.toFixed(3)} → ${sftResult.validations.at(-1)!.loss.toFixed(3)} nats/token   train loss ${sparkline(sftHistory, 30)}`);
  console.log(`     checkpoints ${storeUri}/runs/${sftId}/checkpoints/   export ${sftResult.exportUri}`);

  // ---- DPO from the SFT model -----------------------------------------------------------------
  const dpoSteps = Number(args['steps-dpo']);
  const dpo = parseRecipeConfig('dpo', {
    model: sftResult.exportUri!, data: { train: path.join(root, 'data/demo/dpo.jsonl'), validationFraction: 0.2 },
    trainer: { maxSteps: dpoSteps, globalBatchSize: 8, microBatchSize: 4, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 64 },
  });
  const dpoId = `demo-dpo-${stamp}`;
  await client.workflow.start('trainingWorkflow', { taskQueue: CONTROL_QUEUE, workflowId: dpoId, args: [{ runId: dpoId, recipe: 'dpo', config: dpo }] });
  const dpoResult = await follow(client, dpoId, dpoSteps, 'DPO');
  const acc = dpoResult.validations.map((v) => v.metrics.accuracy.toFixed(2)).join(' → ');
  console.log(`DPO  held-out reward accuracy ${acc} (step ${dpoResult.validations.map((v) => v.step).join(', ')})   margin ${dpoResult.validations.at(-1)!.metrics.margin.toFixed(3)}`);
  console.log(`     checkpoints ${storeUri}/runs/${dpoId}/checkpoints/   export ${dpoResult.exportUri}`);
  console.log(`Inspect the runs in the Web UI${stack.temporal.uiUrl ? ` (${stack.temporal.uiUrl})` : ''} or with: npx tsx infra/cli/main.ts status ${dpoId}`);
} finally {
  await workers.shutdown();
  await client.connection.close();
  if (!args['keep-stack']) await stopStack(stateDir);
}
