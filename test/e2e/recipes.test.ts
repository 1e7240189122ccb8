/**
 * Every offline recipe of the table, end to end on a real Temporal server with real activities
 * and the tiny fixture models: each one moves its headline metric past a stated threshold, and
 * each one survives a kill -9 of its compute worker mid-run with final weights bit-identical to
 * the uninterrupted run (the uninterrupted run is the one whose metrics are checked).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { beforeAll, describe, expect } from 'vitest';
import { getRecipe, parseRecipeConfig, RECIPE_NAMES } from '../../algorithms/recipes/index.js';
import type { RecipeConfig } from '../../algorithms/recipes/index.js';
import type { KdConfig } from '../../algorithms/recipes/kd.js';
import { openParts, openSplit } from '../../activities/data-source.js';
import { createActivities } from '../../activities/index.js';
import { newOptimizer } from '../../activities/training-state.js';
import type { PrecomputedIndex, RunResult, Validation } from '../../activities/types.js';
import { regressionRecords, ktoRecords, rewardPairs } from '../../data/demo/make-extra.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';
import { tokenizePromptResponse } from '../../algorithms/data/pair.js';
import { readManifest } from '../../store/checkpoints.js';
import { openStore } from '../../store/index.js';
import { readMetricsHistory } from '../../store/metrics-ledger.js';
import { progressQuery } from '../../workflows/training.js';
import { crashFixture, root, slowIt, spawnComputeWorker, tinyLlama, uniqueId, writeLines, writePreferenceData, writeSftData } from './helpers.js';

// Reference runs on an in-process compute worker; crash runs on worker processes of their own.
const fixture = crashFixture('recipes');
const { tmp, storeUri, runStore, REF, CRASH } = fixture;
let client: Client;
beforeAll(() => void (client = fixture.client));

const trainer = (over: Record<string, unknown>) => ({ globalBatchSize: 8, microBatchSize: 4, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 4, valEvery: 0, keepCheckpoints: 2, maxLength: 64, ...over });

interface Case {
  recipe: string;
  /** Also run the kill -9 test (every recipe has one; variants of the same code path may skip it). Default true. */
  crash?: boolean;
  config: () => Record<string, unknown>;
  /** What the uninterrupted run must reach: first validation (before training) → last. */
  check: (first: Validation, last: Validation, result: RunResult) => Promise<void> | void;
}

const value = (v: Validation, metric: string) => (metric === 'loss' ? v.loss : v.metrics[metric]);

const CASES: Record<string, Case> = {
  sft: {
    recipe: 'sft',
    config: () => ({ model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'sft'), 80), validationFraction: 0.2 }, trainer: trainer({ maxSteps: 16, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, maxLength: 96 }) }),
    check: (first, last) => expect(last.loss).toBeLessThan(first.loss / 2),
  },
  dpo: {
    recipe: 'dpo',
    config: () => ({ model: tinyLlama, seed: 1, data: { train: writePreferenceData(path.join(tmp, 'dpo'), 96), validationFraction: 0.25 }, trainer: trainer({ maxSteps: 24 }) }),
    check: (_first, last) => expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9),
  },
  rm: {
    // Chosen: a sentence; rejected: its characters reversed; both in the same random case.
    recipe: 'rm',
    config: () => ({
      model: tinyLlama, data: { train: writeLines(path.join(tmp, 'rm'), 'rm.jsonl', rewardPairs(800)), validationFraction: 0.2, overlong: 'drop' },
      trainer: trainer({ maxSteps: 100, globalBatchSize: 16, microBatchSize: 8, checkpointEvery: 20 }),
    }),
    async check(_first, last, result) {
      expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
      // The export is a Hugging Face sequence classifier, and scoreResponses ranks unseen pairs with it.
      const exported = JSON.parse(readFileSync(path.join(tmp, 'store', 'runs', result.runId, 'export', 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(exported).toMatchObject({ architectures: ['LlamaForSequenceClassification'], num_labels: 1 });
      const unseen = rewardPairs(900).slice(800).map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });
      const acts = createActivities({ store: runStore, workerQueue: 'unused' });
      const { scores } = await acts.scoreResponses({
        model: result.exportUri!, samples: unseen.flatMap((p) => [{ prompt: p.prompt, response: p.chosen }, { prompt: p.prompt, response: p.rejected }]),
      });
      const ranked = unseen.filter((_, i) => scores[2 * i][0] > scores[2 * i + 1][0]).length / unseen.length;
      // transformers reads the score at the last token that is not pad_token_id: for every scored
      // sequence that must be its last real token, where we trained and scored.
      const pad = exported.pad_token_id as number;
      const tok = Tokenizer.fromDir(tinyLlama);
      for (const p of unseen) {
        for (const response of [p.chosen, p.rejected]) {
          const t = tokenizePromptResponse(tok, p.prompt, response, { style: 'trl' });
          const ids = [...t.prompt, ...t.response, pad, pad]; // right-padded as a batch would be
          const hfLast = ids.reduce((last, id, i) => (id !== pad ? i : last), -1);
          expect(hfLast).toBe(t.prompt.length + t.response.length - 1);
        }
      }
      console.log(`rm: scoreResponses ranks ${(100 * ranked).toFixed(1)}% of ${unseen.length} unseen pairs right`);
      expect(ranked).toBeGreaterThanOrEqual(0.85);
    },
  },
  'rm-regression': {
    recipe: 'rm',
    config: () => ({
      model: tinyLlama, data: { train: writeLines(path.join(tmp, 'rmr'), 'rm-regression.jsonl', regressionRecords(160)), validationFraction: 0.25 },
      rm: { type: 'regression', numAttributes: 2 }, trainer: trainer({ maxSteps: 30, microBatchSize: 8, checkpointEvery: 6 }),
    }),
    check: (first, last) => expect(last.metrics.mse).toBeLessThanOrEqual(0.5 * first.metrics.mse),
  },
  kd: {
    recipe: 'kd',
    config: () => ({
      model: tinyLlama, data: { train: writeSftData(path.join(tmp, 'kd'), 80), validationFraction: 0.2 },
      kd: { teacher: path.join(root, 'models/fixtures/tiny-gpt2'), topK: 16 }, trainer: trainer({ maxSteps: 16, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, maxLength: 96 }),
    }),
    async check(first, last, result) {
      expect(last.metrics.teacherKl).toBeLessThanOrEqual(0.5 * first.metrics.teacherKl);
      // Plain SFT of the same student, same data and steps: its KL to the teacher must be worse.
      const kdConfig = (await readManifest(openStore(storeUri), result.runId, result.step)).manifest.config as KdConfig;
      const sftConfig = { model: kdConfig.model, seed: kdConfig.seed, data: kdConfig.data, trainer: kdConfig.trainer };
      const sftRun = await execute('sft', sftConfig, REF);
      const sftModel = await loadPretrained(path.join(tmp, 'store', 'runs', sftRun.runId, 'export'));
      const dataset = (await runStore.getJson<{ valid: Parameters<typeof openSplit>[1] }>(`runs/${result.runId}/data/dataset.json`))!;
      const pre = (await runStore.getJson<PrecomputedIndex>(`runs/${result.runId}/precompute/teacher-topk/index.json`))!;
      const [valid, teacher] = [await openSplit(runStore, dataset.valid), openParts(runStore, pre.valid)];
      const kd = getRecipe('kd');
      if (kd.kind !== 'offline') throw new Error('kd is offline');
      const sftEval = await kd.evaluate({ model: sftModel, opt: newOptimizer(sftModel, kdConfig.trainer), trainer: kdConfig.trainer, config: kdConfig, seed: 0 }, valid, teacher);
      await Promise.all([valid.close(), teacher.close()]);
      sftModel.dispose();
      console.log(`kd: teacherKl after ${kdConfig.trainer.maxSteps} steps: KD ${last.metrics.teacherKl.toFixed(4)}, plain SFT ${sftEval.metrics.teacherKl.toFixed(4)}`);
      expect(last.metrics.teacherKl).toBeLessThan(sftEval.metrics.teacherKl);
    },
  },
  // The DPO family: every loss runs end to end as dpo with dpo.loss set (the crash path is dpo's).
  // IPO on averaged log-probs (TRL's convention; summed Δ makes its squared target too stiff);
  // the RPO losses regress βΔ onto the ground-truth gap Δr = 1 − 0, so the margin lands near 1.
  'dpo-ipo': {
    recipe: 'dpo', crash: false,
    config: () => ({ model: tinyLlama, seed: 1, data: { train: writePreferenceData(path.join(tmp, 'dpo-ipo'), 96), validationFraction: 0.25 }, dpo: { loss: 'ipo', averageLogProbs: true }, trainer: trainer({ maxSteps: 24, lr: 1e-3, minLr: 1e-4 }) }),
    check: (first, last) => {
      expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(last.loss).toBeLessThanOrEqual(0.5 * first.loss);
    },
  },
  ...Object.fromEntries((['rpo_sq', 'rpo_bwd_kl', 'rpo_fwd_kl'] as const).map((loss) => [`dpo-${loss}`, {
    recipe: 'dpo', crash: false,
    config: () => ({ model: tinyLlama, seed: 1, data: { train: writePreferenceData(path.join(tmp, `dpo-${loss}`), 96), validationFraction: 0.25 }, dpo: { loss }, trainer: trainer({ maxSteps: 24, lr: 3e-4, minLr: 3e-5 }) }),
    check: (first: Validation, last: Validation) => {
      expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(last.loss).toBeLessThanOrEqual(0.5 * first.loss);
      expect(last.metrics.margin).toBeGreaterThan(0.5);
      expect(last.metrics.margin).toBeLessThan(1.5);
    },
  } satisfies Case])),
  'dpo-sft': {
    recipe: 'dpo', crash: false,
    config: () => ({ model: tinyLlama, seed: 1, data: { train: writePreferenceData(path.join(tmp, 'dpo-sft'), 96), validationFraction: 0.25 }, dpo: { sftWeight: 1 }, trainer: trainer({ maxSteps: 24, lr: 3e-4, minLr: 3e-5 }) }),
    check: (_first, last) => {
      expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(last.metrics.chosenReward).toBeGreaterThan(0); // the SFT term pulls the chosen responses up, not only the rejected down
    },
  },
  'dpo-lora': {
    // The reference policy is the model with its adapters off: nothing precomputed, no second copy.
    recipe: 'dpo',
    config: () => ({
      model: tinyLlama, seed: 1, data: { train: writePreferenceData(path.join(tmp, 'dpo-lora'), 96), validationFraction: 0.25 },
      lora: { rank: 8, alpha: 16, targetModules: ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'] }, trainer: trainer({ maxSteps: 24, lr: 1e-2, minLr: 1e-3 }),
    }),
    async check(_first, last, result) {
      expect(last.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(await runStore.getJson(`runs/${result.runId}/precompute/reference-logps/index.json`)).toBeNull();
      const files = (await openStore(storeUri).list(`runs/${result.runId}/export/`)).map((o) => o.key.split('/').at(-1)).sort();
      expect(files).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'config.json', 'export.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      const merged = await loadPretrained(path.join(tmp, 'store', 'runs', result.runId, 'export')); // the merged model loads as a plain one
      merged.dispose();
    },
  },
  kto: {
    recipe: 'kto',
    config: () => ({ model: tinyLlama, data: { train: writeLines(path.join(tmp, 'kto'), 'kto.jsonl', ktoRecords(160)), validationFraction: 0.25 }, trainer: trainer({ maxSteps: 24, microBatchSize: 8 }) }),
    check: (first, last) => expect(last.metrics.margin).toBeGreaterThan(first.metrics.margin + 1),
  },
  steerlm2: {
    // data/demo/make-steerlm2.ts: 96 prompts, one label, 4 written responses each, log Q′ from this model.
    recipe: 'steerlm2',
    config: () => ({
      model: tinyLlama, data: { train: path.join(root, 'data/demo/steerlm2.jsonl'), validationFraction: 0.25 },
      trainer: trainer({ maxSteps: 24, microBatchSize: 2, lr: 3e-5, minLr: 3e-6, maxLength: 160 }),
    }),
    check: (first, last) => {
      expect(Math.abs(first.metrics.logRatio)).toBeLessThan(1e-3); // the data's log Q′ is of the ids trained on
      expect(last.metrics.distance).toBeLessThan(0.5 * first.metrics.distance);
    },
  },
};

async function execute(recipe: string, raw: Record<string, unknown>, queues: typeof REF): Promise<RunResult> {
  const runId = uniqueId(`e2e-${recipe}`);
  const config: RecipeConfig = parseRecipeConfig(recipe, raw);
  return client.workflow.execute('trainingWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe, config, heartbeatSeconds: 5, queues }] });
}

/** The trained weights of the final checkpoint (the adapters, for a LoRA run). */
async function weightsSha(result: RunResult): Promise<string> {
  const { manifest } = await readManifest(openStore(storeUri), result.runId, result.step);
  const f = manifest.files.find((x) => x.name === 'adapter_model.safetensors') ?? manifest.files.find((x) => x.name === 'model.safetensors')!;
  return f.sha256;
}

describe('every offline recipe end to end', () => {
  slowIt('the cases cover every offline recipe of the table', () => {
    const offline = RECIPE_NAMES.filter((n) => getRecipe(n).kind === 'offline');
    expect(new Set(Object.values(CASES).map((c) => c.recipe))).toEqual(new Set(offline));
  });

  for (const [name, c] of Object.entries(CASES)) {
    const title = c.crash === false ? 'the headline metric moves past its threshold' : 'the headline metric moves past its threshold, and a kill -9 of the compute worker mid-run changes nothing';
    slowIt(`${name}: ${title}`, async () => {
      const raw = c.config();
      const config = parseRecipeConfig(c.recipe, raw);
      const reference = await execute(c.recipe, raw, REF);
      expect(reference.status).toBe('completed');
      const h = getRecipe(c.recipe).headline(config);
      const [first, last] = [reference.validations[0], reference.validations.at(-1)!];
      expect(first.step).toBe(0);
      expect(last.step).toBe(config.trainer.maxSteps);
      console.log(`${name}: ${h.metric} ${value(first, h.metric).toFixed(4)} → ${value(last, h.metric).toFixed(4)} (${h.better} is better)`);
      await c.check(first, last, reference);
      if (c.crash === false) return;

      const env = { TEMPORAL_ADDRESS: defaultTemporalAddress(), ALIGN_STORE_URI: storeUri, ALIGN_QUEUES: `${CRASH.control},${CRASH.compute}` };
      const doomed = await spawnComputeWorker(uniqueId(`${name}-doomed`), env);
      const runId = uniqueId(`e2e-${name}-crash`);
      const handle = await client.workflow.start('trainingWorkflow', { taskQueue: CRASH.control, workflowId: runId, args: [{ runId, recipe: c.recipe, config, heartbeatSeconds: 5, queues: CRASH }] });
      const killAt = 2 * config.trainer.checkpointEvery;
      for (let i = 0; i < 1200; i++) {
        if ((await handle.query(progressQuery)).step >= killAt) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const stepAtKill = (await handle.query(progressQuery)).step;
      doomed.kill('SIGKILL');
      const rescuer = await spawnComputeWorker(uniqueId(`${name}-rescuer`), env);
      const result: RunResult = await handle.result();
      rescuer.kill('SIGTERM');
      expect(stepAtKill).toBeGreaterThanOrEqual(killAt);
      expect(stepAtKill).toBeLessThan(config.trainer.maxSteps);
      expect(result.status).toBe('completed');
      expect(await weightsSha(result)).toBe(await weightsSha(reference));
      // The metrics ledger: every step once, as the uninterrupted run measured it.
      const [got, want] = await Promise.all([readMetricsHistory(runStore.store, result.runId), readMetricsHistory(runStore.store, reference.runId)]);
      const curve = (h: typeof got) => h.steps.map((x) => [x.step, x.loss, x.lr, x.gradNorm, x.tokens]);
      expect(got.steps.map((x) => x.step)).toEqual(Array.from({ length: config.trainer.maxSteps }, (_, i) => i + 1));
      expect(curve(got)).toEqual(curve(want));
      expect(got.validations.map((v) => [v.step, v.loss])).toEqual(want.validations.map((v) => [v.step, v.loss]));
    });
  }
});
