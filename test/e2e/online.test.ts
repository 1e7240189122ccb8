/**
 * The online recipes end to end on a real Temporal server with real activities and the tiny
 * fixture model: each raises its reward within a stated number of iterations; PPO survives a
 * kill -9 of the actor's worker during generation and during training, and of the scoring worker
 * during scoring, and of a rollout replica's worker (parallel.rollout), with final weights
 * bit-identical to an uninterrupted run and the ledger showing that completed stages were not
 * redone; a reward that fails names the prompt.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { beforeAll, describe, expect } from 'vitest';
import { getRecipe, parseRecipeConfig, RECIPE_NAMES } from '../../algorithms/recipes/index.js';
import type { RunResult, Validation } from '../../activities/types.js';
import { startTemporal } from '../../infra/dev-stack.js';
import { freePort } from '../../infra/services.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import { buildApi } from '../../infra/api/server.js';
import { formatRollouts } from '../../infra/cli/format.js';
import { RunService } from '../../infra/runs.js';
import { readManifest } from '../../store/checkpoints.js';
import { listStage, partPrefix } from '../../store/rollout-ledger.js';
import { crashFixture, root, slowIt, spawnComputeWorker, uniqueId } from './helpers.js';
import { readMetricsHistory } from '../../store/metrics-ledger.js';
import { progressQuery } from '../../workflows/training.js';

const fixture = crashFixture('online');
const { tmp, storeUri, store, runStore, REF, CRASH } = fixture;
let client: Client;
beforeAll(() => void (client = fixture.client));

/** The recipe's example config (examples/<recipe>.yaml), with overrides. */
function configOf(recipe: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const ex = getRecipe(recipe).example as Record<string, Record<string, unknown>>;
  const merged: Record<string, unknown> = { ...ex, model: path.join(root, 'models/fixtures/tiny-llama'), data: { ...ex.data, train: path.join(root, 'data/demo/prompts.jsonl') } };
  // Sections merge with the example's; the reward is replaced (it takes exactly one of model and function).
  for (const [k, v] of Object.entries(over)) merged[k] = typeof v === 'object' && v && !Array.isArray(v) && k !== 'reward' ? { ...(merged[k] as object), ...v } : v;
  const reward = merged.reward as { function?: string };
  if (reward.function) merged.reward = { ...reward, function: path.resolve(root, reward.function) };
  return merged;
}

function execute(recipe: string, raw: Record<string, unknown>, queues = REF, heartbeatSeconds = 10): Promise<RunResult> {
  const runId = uniqueId(`online-${recipe}`);
  const config = parseRecipeConfig(recipe, raw);
  return client.workflow.execute(`${recipe}Workflow`, { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe, config, heartbeatSeconds, queues }] });
}

const metric = (v: Validation, m: string) => v.metrics[m];
const meanOf = (vs: readonly Validation[], m: string) => vs.reduce((s, v) => s + metric(v, m), 0) / vs.length;

interface Case { iterations: number; headline: string; gain: number; check?: (vs: Validation[]) => void }
const CASES: Record<string, Case> = {
  // KL stays bounded: the per-token penalty (β = 0.01) keeps the sequence KL in the tens of nats.
  ppo: { iterations: 14, headline: 'reward', gain: 0.4, check: (vs) => expect(Math.max(...vs.map((v) => metric(v, 'kl')))).toBeLessThan(60) },
  reinforce: { iterations: 10, headline: 'reward', gain: 0.4 },
  grpo: { iterations: 10, headline: 'reward', gain: 0.4 },
  rs: { iterations: 12, headline: 'keptReward', gain: 0.3 },
};

describe('the online recipes end to end', () => {
  slowIt('the cases cover every online recipe of the table', () => {
    expect(new Set(Object.keys(CASES))).toEqual(new Set(RECIPE_NAMES.filter((n) => getRecipe(n).kind === 'online')));
  });

  for (const [recipe, c] of Object.entries(CASES)) {
    slowIt(`${recipe} raises its ${c.headline} by ≥ ${c.gain} within ${c.iterations} iterations (programmatic reward)`, async () => {
      const r = await execute(recipe, configOf(recipe, { trainer: { maxSteps: c.iterations } }));
      expect(r.status).toBe('completed');
      expect(r.validations).toHaveLength(c.iterations);
      const curve = r.validations.map((v) => metric(v, c.headline).toFixed(2)).join(' ');
      const [first, last3] = [metric(r.validations[0], c.headline), meanOf(r.validations.slice(-3), c.headline)];
      console.log(`${recipe}: ${c.headline} per iteration ${curve}`);
      expect(last3).toBeGreaterThanOrEqual(first + c.gain);
      c.check?.(r.validations);
      // The policy on held-out prompts, before the first iteration and after the last.
      const evals = r.evaluations!;
      expect(evals.map((e) => e.iteration)).toEqual([0, c.iterations]);
      console.log(`${recipe}: held-out reward ${evals[0].metrics.evalReward.toFixed(3)} → ${evals[1].metrics.evalReward.toFixed(3)} on ${evals[0].metrics.evalPrompts} prompts`);
      expect(evals[1].metrics.evalReward).toBeGreaterThan(evals[0].metrics.evalReward + c.gain / 2);
      expect(existsSync(path.join(tmp, 'store', 'runs', r.runId, 'export', 'model.safetensors'))).toBe(true);
    });
  }

  slowIt('ppo with LoRA: only the adapters train (the reference is the adapters-off actor), the reward rises, and the export has the merged model and the adapters', async () => {
    const lora = { rank: 8, alpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] };
    const r = await execute('ppo', configOf('ppo', { lora, trainer: { maxSteps: 16, lr: 2e-2, minLr: 2e-2 } }));
    const curve = r.validations.map((v) => metric(v, 'reward'));
    console.log(`ppo + LoRA: reward per iteration ${curve.map((x) => x.toFixed(2)).join(' ')}`);
    expect(meanOf(r.validations.slice(-3), 'reward')).toBeGreaterThanOrEqual(curve[0] + 0.3);
    // The log-probs stage checked the sampler against the trained policy every iteration.
    expect(Math.max(...r.validations.map((v) => metric(v, 'samplerDrift')))).toBeLessThan(1e-3);
    const exported = path.join(tmp, 'store', 'runs', r.runId, 'export');
    for (const f of ['model.safetensors', 'adapter_model.safetensors', 'adapter_config.json']) expect(existsSync(path.join(exported, f)), f).toBe(true);
  });

  slowIt('ppo with a trained reward model (an rm run\'s export, which also initialises the critic) raises that model\'s reward', async () => {
    const rmId = uniqueId('online-rm');
    const rmConfig = parseRecipeConfig('rm', {
      model: path.join(root, 'models/fixtures/tiny-llama'), data: { train: path.join(root, 'data/demo/rm.jsonl'), validationFraction: 0.2 },
      trainer: { maxSteps: 40, globalBatchSize: 16, microBatchSize: 8, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 40, valEvery: 0, maxLength: 64 },
    });
    const rmRun: RunResult = await client.workflow.execute('trainingWorkflow', { taskQueue: REF.control, workflowId: rmId, args: [{ runId: rmId, recipe: 'rm', config: rmConfig, queues: REF }] });
    expect(rmRun.exportUri).toBeTruthy();
    const r = await execute('ppo', configOf('ppo', { reward: { model: rmRun.exportUri }, trainer: { maxSteps: 10 } }));
    const curve = r.validations.map((v) => metric(v, 'reward'));
    console.log(`ppo + reward model (rm accuracy ${metric(rmRun.validations.at(-1)!, 'accuracy').toFixed(2)}): reward per iteration ${curve.map((x) => x.toFixed(2)).join(' ')}`);
    expect(meanOf(r.validations.slice(-3), 'reward')).toBeGreaterThan(curve[0] + 0.5 * Math.max(...r.validations.map((v) => metric(v, 'rewardStd'))));
  });

  slowIt('ppo with the adaptive KL controller: β follows Ziegler et al.\'s update from iteration to iteration, carried in the loop state', async () => {
    const r = await execute('ppo', configOf('ppo', { ppo: { criticLr: 3e-3, klBeta: 0.01, adaptiveKl: { target: 1, horizon: 100 } }, trainer: { maxSteps: 4 } }));
    const betas = r.validations.map((v) => metric(v, 'klBeta'));
    expect(betas[0]).toBe(0.01);
    // β_{k+1} = β_k·(1 + clip(KL_k/target − 1, ±0.2)·n/horizon), n = 16 rollouts, KL_k the iteration's sequence KL.
    for (let k = 0; k + 1 < betas.length; k++) {
      const kl = metric(r.validations[k], 'kl');
      expect(betas[k + 1]).toBeCloseTo(betas[k] * (1 + Math.max(-0.2, Math.min(0.2, kl - 1)) * 16 / 100), 12);
    }
    expect(new Set(betas).size).toBeGreaterThan(1);
  });

  slowIt('the ledger viewer: align rollouts and GET /runs/:id/rollouts show an iteration\'s prompts, responses, rewards and kept samples', async () => {
    const r = await execute('rs', configOf('rs', { trainer: { maxSteps: 2 } }));
    const service = new RunService({ address: defaultTemporalAddress(), storeUri, queues: REF });
    const app = buildApi({ service, token: 'secret' });
    try {
      const view = await service.rollouts(r.runId, 0);
      expect(view.iterations).toEqual([0, 1, 2]); // 2 holds only the final evaluation
      expect(view.stages.map((s) => s.stage)).toEqual(['generate', 'score', 'advantages', 'eval']);
      expect(view.samples).toHaveLength(16);
      // rs keeps the best of 4 per prompt: 4 prompts, 4 kept, each the highest reward of its group.
      expect(view.samples.filter((s) => s.trains)).toHaveLength(4);
      for (let g = 0; g < 4; g++) {
        const group = view.samples.slice(4 * g, 4 * g + 4);
        const kept = group.find((s) => s.trains)!;
        expect(kept.reward).toBe(Math.max(...group.map((s) => s.reward!)));
      }
      const text = formatRollouts(view, 3);
      expect(text).toMatch(/iteration 0 \(iterations 0…2 in the ledger\)/);
      expect(text).toContain(JSON.stringify(view.samples[0].prompt));
      expect(text).toMatch(/… 13 more/);
      const res = await app.inject({ method: 'GET', url: `/runs/${r.runId}/rollouts?iteration=1`, headers: { authorization: 'Bearer secret' } });
      expect(res.statusCode).toBe(200);
      expect((res.json() as { iteration: number }).iteration).toBe(1);
      const missing = await app.inject({ method: 'GET', url: `/runs/${r.runId}/rollouts?iteration=7`, headers: { authorization: 'Bearer secret' } });
      expect(missing.statusCode).toBe(404);
      expect(missing.body).toMatch(/no rollouts at iteration 7; it has iterations 0…2/);
    } finally {
      await app.close();
      await service.close();
    }
  });

  slowIt('a reward function that throws, or returns NaN, fails the run naming the prompt', async () => {
    const fixture = path.join(root, 'test/e2e/fixtures/slow-reward.ts');
    for (const [name, want] of [['throwsOnThird', /threw on the prompt at .*prompts\.jsonl line \d+ .*verifier crashed/], ['notANumber', /returned NaN \(not a finite number\) on the prompt at .*line \d+/]] as const) {
      const err = await execute('grpo', configOf('grpo', { reward: { function: `${fixture}#${name}` }, trainer: { maxSteps: 2 } })).catch((e: unknown) => e);
      const cause = (err as { cause?: { cause?: { message?: string; type?: string } } }).cause?.cause;
      expect(cause?.type).toBe('DataError');
      expect(cause?.message).toMatch(want);
    }
  });
});

describe('the hang watchdog in the online stages', () => {
  slowIt('a stage other than training (the held-out evaluation, its reward stuck) that heartbeats without progress for trainer.hangSeconds is failed and run again; the run completes and records the hang', async () => {
    const runId = uniqueId('online-hang');
    const raw = configOf('grpo', { reward: { function: `${path.join(root, 'test/e2e/fixtures/slow-reward.ts')}#stallsOnce` }, trainer: { maxSteps: 2, hangSeconds: 1 } });
    const handle = await client.workflow.start('grpoWorkflow', {
      taskQueue: REF.control, workflowId: runId, args: [{ runId, recipe: 'grpo', config: parseRecipeConfig('grpo', raw), heartbeatSeconds: 3, queues: REF }],
    });
    const r: RunResult = await handle.result();
    expect(r.status).toBe('completed');
    const events = (await handle.query(progressQuery)).events ?? [];
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'hang', step: 0 });
    // The reward is first called by iteration 0's evaluation, which is where it stalls.
    expect(events[0].detail).toMatch(/^no progress for \d+ s \(last report: \{"stage":"eval","phase":"scoring"\}\); the iteration goes on from the ledger$/);
  });
});

// ---------------------------------------------------------------------------------------------
// Exact resume mid-iteration

/** PPO slow enough to kill inside a stage: 64 rollouts in 8 shards, a reward of 15 ms per sample, 2 epochs. */
const crashConfig = () => configOf('ppo', {
  trainer: { maxSteps: 3, globalBatchSize: 16, microBatchSize: 4 },
  rollout: { promptsPerIteration: 64, shardRows: 8, microBatch: 8, maxNewTokens: 16, stopStrings: [] },
  reward: { function: path.join(root, 'test/e2e/fixtures/slow-reward.ts') },
  ppo: { epochs: 2 },
});

async function finalWeights(r: RunResult): Promise<string> {
  const { manifest } = await readManifest(store, r.runId, r.step);
  return manifest.files.find((f) => f.name === 'model.safetensors')!.sha256;
}

const env = { TEMPORAL_ADDRESS: defaultTemporalAddress(), ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${CRASH.control},${CRASH.compute}`, ALIGN_WORKER_SLOTS: '2' };

/** Polls until `when` holds (every 10 ms, at most 120 s). */
async function waitFor(what: string, when: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 12_000; i++) {
    if (await when()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** PENDING_ACTIVITY_STATE_STARTED (temporal.api.enums.v1.PendingActivityState). */
const STARTED = 2;

/** The started activity of that type, and which worker process runs it. */
async function started(runId: string, type: string): Promise<string | null> {
  const d = await client.workflow.getHandle(runId).describe();
  const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === type && (Number(p.state) === STARTED || String(p.state).endsWith('STARTED')));
  return a ? a.lastWorkerIdentity ?? '' : null;
}

const pidOf = (identity: string) => Number(identity.split('@')[0]);

describe('PPO: exact resume after kill -9 mid-iteration', () => {
  let reference: RunResult;
  const refWeights = async () => {
    reference ??= await execute('ppo', crashConfig());
    return finalWeights(reference);
  };

  async function crashRun(kill: (runId: string, procs: ChildProcess[]) => Promise<ChildProcess>): Promise<{ result: RunResult; killed: string; rescuer: ChildProcess }> {
    const ids = [uniqueId('ppo-a'), uniqueId('ppo-b')];
    const procs = [await spawnComputeWorker(ids[0], env)];
    const runId = uniqueId('online-ppo-crash');
    const config = parseRecipeConfig('ppo', crashConfig());
    const handle = await client.workflow.start('ppoWorkflow', { taskQueue: CRASH.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config, heartbeatSeconds: 2, queues: CRASH }] });
    // A run that fails before the kill point must fail the test at once, not time out waiting.
    const victim = await Promise.race([kill(runId, procs), handle.result().then(() => { throw new Error('the run completed before the kill point'); })]);
    const killed = ids[procs.indexOf(victim)] ?? 'unknown';
    victim.kill('SIGKILL');
    const rescuer = await spawnComputeWorker(uniqueId('ppo-rescuer'), env);
    const result: RunResult = await handle.result();
    for (const p of [...procs, rescuer]) p.kill('SIGTERM');
    expect(result.status).toBe('completed');
    return { result, killed, rescuer };
  }

  slowIt('(a) the actor\'s worker killed during generation: only the unfinished shards are generated again', async () => {
    const want = await refWeights();
    let runOf = '';
    const { result, killed } = await crashRun(async (runId, procs) => {
      runOf = runId;
      // Iteration 1: two shards committed, the last not yet.
      await waitFor('two generation shards of iteration 1', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'generate', 1), 'manifest.json')));
      return procs[0];
    });
    const parts = await listStage(store, runOf, 1, 'generate');
    expect(parts).toHaveLength(8);
    const byKilled = parts.filter((p) => p.info?.writtenBy.endsWith(killed)).length;
    console.log(`generation kill: ${byKilled} of 8 shards of iteration 1 came from the killed worker, ${8 - byKilled} were generated after it died`);
    expect(byKilled).toBeGreaterThanOrEqual(2);
    expect(byKilled).toBeLessThan(8);
    expect(await finalWeights(result)).toBe(want);
  });

  slowIt('(b) the actor\'s worker killed during training: generation, scoring, log-probs, values and advantages are not redone', async () => {
    const want = await refWeights();
    let runOf = '';
    const { result, killed } = await crashRun(async (runId, procs) => {
      runOf = runId;
      await waitFor('iteration 1 training', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'advantages', 0), 'manifest.json')) && (await started(runId, 'trainOnRollouts')) !== null);
      return procs[0];
    });
    for (const stage of ['generate', 'score', 'logprobs', 'values']) {
      const parts = await listStage(store, runOf, 1, stage);
      expect(parts.every((p) => p.info?.writtenBy.endsWith(killed)), `${stage} of iteration 1 was written by the killed worker only`).toBe(true);
    }
    expect(await finalWeights(result)).toBe(want);
    // The metrics ledger: each iteration once, as the uninterrupted run measured it, and the held-out evaluations.
    const [got, ref] = await Promise.all([readMetricsHistory(store, result.runId), readMetricsHistory(store, reference.runId)]);
    const curve = (h: typeof got) => h.steps.map((x) => [x.step, x.loss, x.gradNorm, x.tokens]);
    expect(got.steps.map((x) => x.step)).toEqual(Array.from({ length: result.step }, (_, i) => i + 1));
    expect(curve(got)).toEqual(curve(ref));
    expect(got.steps[0].metrics).toHaveProperty('generateSeconds');
    expect(got.evaluations.map((e) => e.step)).toEqual(ref.evaluations.map((e) => e.step));
    expect(got.evaluations[0].metrics).toHaveProperty('evalReward');
  });

  slowIt('(c) the scoring worker killed during scoring: the run re-scores and completes bit-identically', async () => {
    const want = await refWeights();
    const { result } = await crashRun(async (runId, procs) => {
      procs.push(await spawnComputeWorker(uniqueId('ppo-b'), env));
      let identity: string | null = null;
      await waitFor('iteration 1 scoring', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'generate', 7), 'manifest.json')) && (identity = await started(runId, 'scoreRollouts')) !== null);
      const victim = procs.find((p) => p.pid === pidOf(identity!));
      expect(victim, `the scoring worker ${identity} is one of ours`).toBeDefined();
      return victim!;
    });
    expect(await finalWeights(result)).toBe(want);
  });

  slowIt('(e) the critic on a worker of its own (ppo.criticWorker = own), killed -9 while it trains: re-placed, and the actor ends bit-identical to the co-located run', async () => {
    const want = await refWeights();
    // One slot per worker: the actor takes A's, so the critic must go to B.
    const oneSlot = { ...env, ALIGN_WORKER_SLOTS: '1' };
    const [a, b] = [await spawnComputeWorker(uniqueId('ppo-actor'), oneSlot), await spawnComputeWorker(uniqueId('ppo-critic'), oneSlot)];
    const runId = uniqueId('online-ppo-own-critic');
    const config = parseRecipeConfig('ppo', { ...crashConfig(), ppo: { epochs: 2, criticLr: 3e-3, klBeta: 0.01, criticWorker: 'own' } });
    const handle = await client.workflow.start('ppoWorkflow', { taskQueue: CRASH.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config, heartbeatSeconds: 2, queues: CRASH }] });
    let identity: string | null = null;
    let actorIdentity: string | null = null;
    await Promise.race([
      waitFor('iteration 1 critic training', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'advantages', 0), 'manifest.json'))
        && (identity = await started(runId, 'trainCritic')) !== null && (actorIdentity = await started(runId, 'trainOnRollouts')) !== null),
      handle.result().then(() => { throw new Error('the run completed before the kill point'); }),
    ]);
    expect(pidOf(identity!), 'the critic trains on another worker than the actor').not.toBe(pidOf(actorIdentity!));
    const victim = [a, b].find((p) => p.pid === pidOf(identity!))!;
    victim.kill('SIGKILL');
    const rescuer = await spawnComputeWorker(uniqueId('ppo-rescuer'), oneSlot);
    const result: RunResult = await handle.result();
    for (const p of [a, b, rescuer]) p.kill('SIGTERM');
    expect(result.status).toBe('completed');
    expect(await finalWeights(result)).toBe(want);
    // The critic's checkpoints are a store run of their own; the actor's hold no critic files.
    const { manifest: criticCkpt } = await readManifest(store, `${runId}-critic`, 3);
    expect(criticCkpt.files.map((f) => f.name)).toContain('model.safetensors');
    const { manifest: actorCkpt } = await readManifest(store, runId, 3);
    expect(actorCkpt.files.some((f) => f.name.startsWith('critic.'))).toBe(false);
  });

  slowIt('(f) the rollout over two workers and the score in two parts (parallel.rollout.dp = reward.dp = 2), the replica\'s worker killed -9 while it generates: re-placed, and the weights end bit-identical to the one-worker run', async () => {
    const want = await refWeights();
    // One slot per worker: the actor takes one, so rollout replica 1 must go to the other.
    const oneSlot = { ...env, ALIGN_WORKER_SLOTS: '1' };
    const ids = [uniqueId('ppo-w0'), uniqueId('ppo-w1')];
    const procs = [await spawnComputeWorker(ids[0], oneSlot), await spawnComputeWorker(ids[1], oneSlot)];
    const runId = uniqueId('online-ppo-layout');
    const config = parseRecipeConfig('ppo', { ...crashConfig(), parallel: { rollout: { dp: 2 }, reward: { dp: 2 } } });
    const handle = await client.workflow.start('ppoWorkflow', { taskQueue: CRASH.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config, heartbeatSeconds: 2, queues: CRASH }] });
    // Iteration 1's shard 1 is replica 1's (shards go round-robin): kill its writer as soon as it commits.
    await Promise.race([
      waitFor('replica 1 generating iteration 1', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'generate', 1), 'manifest.json'))),
      handle.result().then(() => { throw new Error('the run completed before the kill point'); }),
    ]);
    const writerOf = async (it: number, stage: string) => (await listStage(store, runId, it, stage)).map((p) => ids.findIndex((id) => p.info?.writtenBy.endsWith(id)));
    // Iteration 0 is committed whole: its shard 1 is replica 1's too.
    const replica = (await writerOf(0, 'generate'))[1];
    expect(replica, 'replica 1 runs on one of our workers').toBeGreaterThanOrEqual(0);
    procs[replica].kill('SIGKILL');
    const rescuerId = uniqueId('ppo-rescuer');
    const rescuer = await spawnComputeWorker(rescuerId, oneSlot);
    const result: RunResult = await handle.result();
    for (const p of [...procs, rescuer]) p.kill('SIGTERM');
    expect(result.status).toBe('completed');
    expect(await finalWeights(result)).toBe(want);
    // Iteration 0: the even shards from the actor's worker, the odd ones from the replica's; log-probs in two blocks, one from each.
    const actor = 1 - replica;
    expect(await writerOf(0, 'generate')).toEqual([actor, replica, actor, replica, actor, replica, actor, replica]);
    expect(await writerOf(0, 'logprobs')).toEqual([actor, replica]);
    expect((await listStage(store, runId, 0, 'score')).map((p) => p.records)).toEqual([32, 32]);
    // Iteration 1: the replica's unfinished shards came from the worker that took its slot.
    const rescued = (await listStage(store, runId, 1, 'generate')).filter((p) => p.info?.writtenBy.endsWith(rescuerId)).length;
    console.log(`rollout replica kill: ${rescued} of iteration 1's 4 replica shards were generated by the worker that took its slot`);
    expect(rescued).toBeGreaterThanOrEqual(1);
  });

  slowIt('(g) the actor trained data parallel over its worker and a replica (parallel.actor.dp = 2), the replica\'s worker killed -9 while it trains: the ranks meet again, and weights and losses end bit-identical to one worker', async () => {
    // One micro-batch per rank per mini-batch: the rank-ordered gradient sum is one worker's accumulation, bit for bit.
    const crash = crashConfig();
    const base = { ...crash, trainer: { ...(crash.trainer as object), microBatchSize: 8 } };
    const reference = await execute('ppo', base);
    const oneSlot = { ...env, ALIGN_WORKER_SLOTS: '1' };
    const ids = [uniqueId('ppo-dp0'), uniqueId('ppo-dp1')];
    const procs = [await spawnComputeWorker(ids[0], oneSlot), await spawnComputeWorker(ids[1], oneSlot)];
    const runId = uniqueId('online-ppo-actor-dp');
    const config = parseRecipeConfig('ppo', { ...base, parallel: { actor: { dp: 2 }, rollout: { dp: 2 } } });
    const handle = await client.workflow.start('ppoWorkflow', { taskQueue: CRASH.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config, heartbeatSeconds: 2, queues: CRASH }] });
    const training = async () => {
      const d = await client.workflow.getHandle(runId).describe();
      return (d.raw.pendingActivities ?? []).filter((p) => p.activityType?.name === 'trainOnRollouts' && (Number(p.state) === STARTED || String(p.state).endsWith('STARTED'))).length;
    };
    await Promise.race([
      waitFor('both actor ranks training iteration 1', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'advantages', 0), 'manifest.json')) && (await training()) === 2),
      handle.result().then(() => { throw new Error('the run completed before the kill point'); }),
    ]);
    // Shard 1 is replica 1's, which is actor rank 1.
    const writer = (await listStage(store, runId, 0, 'generate')).map((p) => ids.findIndex((id) => p.info?.writtenBy.endsWith(id)))[1];
    expect(writer, 'replica 1 runs on one of our workers').toBeGreaterThanOrEqual(0);
    procs[writer].kill('SIGKILL');
    const rescuer = await spawnComputeWorker(uniqueId('ppo-rescuer'), oneSlot);
    const result: RunResult = await handle.result();
    for (const p of [...procs, rescuer]) p.kill('SIGTERM');
    expect(result.status).toBe('completed');
    expect(await finalWeights(result)).toBe(await finalWeights(reference));
    const [got, ref] = await Promise.all([readMetricsHistory(store, result.runId), readMetricsHistory(store, reference.runId)]);
    const curve = (h: typeof got) => h.steps.map((x) => [x.step, x.loss, x.gradNorm, x.tokens, x.metrics.clipFraction]);
    expect(curve(got)).toEqual(curve(ref));
    // Iteration 1's training ran again: more than two ranks × three iterations of it were scheduled.
    const history = await client.workflow.getHandle(runId).fetchHistory();
    const trainings = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainOnRollouts').length;
    expect(trainings).toBeGreaterThan(6);
  });

  slowIt('(d) the Temporal server killed (-9) and restarted during an iteration: the run completes bit-identically', async () => {
    const want = await refWeights();
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'aligner-temporal-restart-'));
    const port = await freePort();
    let server = await startTemporal({ stateDir, temporalPort: port, headless: true, detached: false });
    const queues = { control: 'align-control-online-restart', compute: 'align-cpu-online-restart' };
    const own = await startWorkers({ address: server.address, store: runStore, role: 'all', workerId: uniqueId('restart'), queues });
    const c = new Client({ connection: await connectTemporal(server.address) });
    try {
      const runId = uniqueId('online-ppo-restart');
      const config = parseRecipeConfig('ppo', crashConfig());
      const handle = await c.workflow.start('ppoWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config, heartbeatSeconds: 10, queues }] });
      await waitFor('iteration 1 generating', async () => existsSync(path.join(tmp, 'store', partPrefix(runId, 1, 'generate', 1), 'manifest.json')));
      process.kill(server.pid!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 2000));
      server = await startTemporal({ stateDir, temporalPort: port, headless: true, detached: false });
      const result: RunResult = await handle.result();
      expect(result.status).toBe('completed');
      expect(await finalWeights(result)).toBe(want);
    } finally {
      await own.shutdown();
      await c.connection.close();
      if (server.pid) process.kill(server.pid, 'SIGTERM');
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
