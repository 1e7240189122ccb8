/**
 * `npm run demo`: the RLHF pipeline on embedded defaults. It starts the dev stack (a Temporal dev
 * server with its Web UI), runs the workers in this process, and runs three durable recipes on a
 * tiny committed model and datasets: SFT; a Bradley-Terry reward model started from the SFT
 * export; then PPO from the SFT export against that reward model (which also initialises the
 * critic). It shows a progress bar for each run and prints where the checkpoints are and the
 * before/after metrics, the reward above all.
 *
 *   npm run demo -- [--keep-stack] [--steps-sft 40] [--steps-rm 60] [--iterations-ppo 12]
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
    'steps-rm': { type: 'string', default: '60' },
    'iterations-ppo': { type: 'string', default: '12' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`npm run demo -- [--keep-stack] [--steps-sft N] [--steps-rm N] [--iterations-ppo N]

Starts the dev stack (Temporal dev server + Web UI) under .state/ and runs the RLHF pipeline as
durable Temporal workflows on models/fixtures/tiny-llama and data/demo/*.jsonl: SFT, a reward
model from the SFT export, then PPO from the SFT export against that reward model. Prints
progress, checkpoints and before/after metrics (PPO: the reward model's reward per iteration).
--keep-stack leaves the servers running (stop them with: npm run stack -- stop).`);
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

  // ---- Reward model from the SFT model ------------------------------------------------------------
  const rmSteps = Number(args['steps-rm']);
  const rm = parseRecipeConfig('rm', {
    model: sftResult.exportUri!, data: { train: path.join(root, 'data/demo/rm.jsonl'), validationFraction: 0.2 },
    trainer: { maxSteps: rmSteps, globalBatchSize: 16, microBatchSize: 8, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 20, valEvery: 20, maxLength: 64 },
  });
  const rmId = `demo-rm-${stamp}`;
  await client.workflow.start('trainingWorkflow', { taskQueue: CONTROL_QUEUE, workflowId: rmId, args: [{ runId: rmId, recipe: 'rm', config: rm }] });
  const rmResult = await follow(client, rmId, rmSteps, 'RM ');
  const acc = rmResult.validations.map((v) => v.metrics.accuracy.toFixed(2)).join(' → ');
  console.log(`RM   held-out accuracy ${acc} (step ${rmResult.validations.map((v) => v.step).join(', ')})   export ${rmResult.exportUri}`);

  // ---- PPO from the SFT model, against the reward model ------------------------------------------
  const iterations = Number(args['iterations-ppo']);
  const ppo = parseRecipeConfig('ppo', {
    model: sftResult.exportUri!, data: { train: path.join(root, 'data/demo/prompts.jsonl') }, reward: { model: rmResult.exportUri! },
    trainer: { maxSteps: iterations, globalBatchSize: 16, microBatchSize: 16, lr: 3e-3, minLr: 3e-3, maxLength: 96 },
    rollout: { promptsPerIteration: 16, maxNewTokens: 12, stopStrings: [' '], maskTruncated: false },
    ppo: { criticLr: 3e-3, klBeta: 0.1 },
  });
  const ppoId = `demo-ppo-${stamp}`;
  await client.workflow.start('ppoWorkflow', { taskQueue: CONTROL_QUEUE, workflowId: ppoId, args: [{ runId: ppoId, recipe: 'ppo', config: ppo }] });
  const ppoResult = await follow(client, ppoId, iterations, 'PPO');
  const rewards = ppoResult.validations.map((v) => v.metrics.reward);
  const kl = ppoResult.validations.at(-1)!.metrics.kl;
  console.log(`PPO  reward ${rewards[0].toFixed(3)} → ${rewards.at(-1)!.toFixed(3)}   ${sparkline(rewards, 30)}   KL to the SFT model ${kl.toFixed(2)} nats`);
  console.log(`     checkpoints ${storeUri}/runs/${ppoId}/checkpoints/   rollouts ${storeUri}/runs/${ppoId}/rollouts/   export ${ppoResult.exportUri}`);
  // The stack is stopped when the demo ends (unless --keep-stack): the hints say how to look again.
  const look = [`npm run align -- status ${ppoId}`, `npm run align -- metrics ${ppoId}`, `npm run align -- rollouts ${ppoId}`];
  if (args['keep-stack']) {
    console.log(`Inspect the runs in the Web UI${stack.temporal.uiUrl ? ` (${stack.temporal.uiUrl})` : ''} or with: ${look.join('   ')}`);
  } else {
    console.log(`The dev stack is stopped again; the runs stay in ${stateDir}. To look at them: npm run stack -- start, then ${look.join('   ')}`);
    console.log('(npm run demo -- --keep-stack leaves the stack running.)');
  }
  console.log('The dashboard: ALIGN_API_TOKEN=<any secret> npm run api, then open http://127.0.0.1:8787/ and paste that token (with the stack running).');
} finally {
  await workers.shutdown();
  await client.connection.close();
  if (!args['keep-stack']) await stopStack(stateDir);
}
