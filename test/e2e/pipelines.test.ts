/**
 * Pipelines end to end on the real Temporal server with real activities and the tiny fixture
 * model: each completes and each stage shows its stated effect, and stage records show which
 * child runs ran. Fault and schedule cases are in pipeline-faults.test.ts.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { getPipeline } from '../../algorithms/pipelines/index.js';
import type { PipelineRecord } from '../../activities/pipeline/types.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { PipelineService } from '../../infra/pipelines.js';
import { generateSamples } from '../../infra/generate.js';
import { RunService } from '../../infra/runs.js';
import { crashFixture, root, slowIt, uniqueId } from './helpers.js';

const fixture = crashFixture('pipelines');
const { tmp, storeUri, store, REF } = fixture;

const service = () => new PipelineService(new RunService({ address: defaultTemporalAddress(), storeUri, queues: REF }));

/** Starts a pipeline with its example config (overridden) and waits for it; returns its record. */
export async function runPipeline(svc: PipelineService, name: string, over: Record<string, unknown> = {}): Promise<PipelineRecord> {
  const example = getPipeline(name).example;
  const { pipelineId } = await svc.start(name, { ...example, ...over }, [], { pipelineId: uniqueId(name), baseDir: root });
  for (;;) {
    const v = await svc.status(pipelineId);
    if (v.state !== 'RUNNING') {
      if (v.state !== 'COMPLETED') throw new Error(`pipeline ${pipelineId} ended ${v.state}: ${v.failure?.message}`);
      const wall = (Date.parse(v.closeTime!) - Date.parse(v.startTime)) / 1000;
      console.log(`${name}: ${wall.toFixed(1)} s wall; stages ${Object.entries(v.seconds).map(([k, x]) => `${k} ${x.toFixed(1)} s`).join(', ')}`);
      return v.record!;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const stage = (r: PipelineRecord, name: string) => r.stages.find((s) => s.name === name)!;
/** The SteerLM pipeline's record: its models start the SteerLM 2.0 case. */
let steered: PipelineRecord | undefined;

describe('pipelines end to end', () => {
  slowIt('RLHF: SFT → reward model from the SFT model → PPO from the SFT model against it; each stage\'s effect recorded', async () => {
    const svc = service();
    const r = await runPipeline(svc, 'rlhf');
    for (const s of r.stages) console.log(`  ${s.name}: ${s.output?.summary}`);
    const [sft, rm, ppo] = ['sft', 'rm', 'ppo'].map((n) => stage(r, n));
    expect(sft.output!.metrics.lossAfter).toBeLessThan(sft.output!.metrics.lossBefore);
    expect(rm.output!.metrics.accuracyAfter).toBeGreaterThan(rm.output!.metrics.accuracyBefore);
    // Lineage: the RM starts from the SFT export; PPO from the SFT export, scored by the RM's.
    expect(rm.inputs).toEqual([sft.output!.model]);
    expect(new Set(ppo.inputs)).toEqual(new Set([sft.output!.model, rm.output!.model]));
    // PPO raises the reward model's reward of the policy's samples (as the demo shows).
    expect(ppo.output!.metrics.rewardAfter).toBeGreaterThan(ppo.output!.metrics.rewardBefore);
    expect(ppo.output!.metrics.heldOutRewardAfter).toBeDefined();
    expect(r.output!.model).toBe(ppo.output!.model);
    await svc.runs.close();
  }, 600_000);

  slowIt('iterative DPO: the reward of the policy\'s samples rises over two rounds (π₀ → π₁ → π₂)', async () => {
    const svc = service();
    const r = await runPipeline(svc, 'iterative-dpo');
    expect(r.state).toBe('completed');
    expect(r.stages.map((s) => s.name)).toEqual(['pairs-1', 'dpo-1', 'pairs-2', 'dpo-2', 'final-reward']);
    const rewards = ['pairs-1', 'pairs-2', 'final-reward'].map((s) => stage(r, s).output!.metrics.meanReward);
    console.log(`iterative-dpo: mean reward of the policy's samples per round ${rewards.map((x) => x.toFixed(3)).join(' → ')}`);
    for (const s of r.stages) console.log(`  ${s.name}: ${s.output?.summary}`);
    expect(rewards[2]).toBeGreaterThan(rewards[0] + 0.05);
    // Lineage: round 2 samples from round 1's DPO export, and both DPO rounds keep π₀ as the reference.
    expect(stage(r, 'pairs-2').inputs).toContain(stage(r, 'dpo-1').output!.model);
    expect(stage(r, 'dpo-2').inputs).toEqual(expect.arrayContaining([stage(r, 'pairs-2').output!.data, stage(r, 'dpo-1').output!.model]));
    expect(r.output!.model).toBe(stage(r, 'dpo-2').output!.model);
    expect(path.basename(r.start.model)).toBe('tiny-llama');
    await svc.runs.close();
  }, 600_000);

  slowIt('SteerLM: asking for a higher attribute value raises the attribute model\'s score of the samples', async () => {
    const svc = service();
    const r = await runPipeline(svc, 'steerlm');
    expect(r.stages.map((s) => s.name)).toEqual(['attribute-model', 'annotate', 'sft', 'steer-eval']);
    for (const s of r.stages) console.log(`  ${s.name}: ${s.output?.summary}`);
    // The attribute model learnt (its held-out MSE fell), the annotation labelled every turn.
    const am = stage(r, 'attribute-model').output!.metrics;
    expect(am.mseAfter).toBeLessThan(am.mseBefore);
    expect(stage(r, 'annotate').output!.records).toBe(192);
    const e = stage(r, 'steer-eval').output!.metrics;
    console.log(`steerlm: shouting asked 0 → predicted ${e.shoutingAtLow.toFixed(2)}; asked 4 → ${e.shoutingAtHigh.toFixed(2)}`);
    expect(e.shoutingAtHigh).toBeGreaterThan(e.shoutingAtLow + 1);
    expect(stage(r, 'sft').inputs).toEqual([stage(r, 'annotate').output!.data]);
    // align generate --attributes: the same steering from the command's code path.
    const gen = (attributes: string) => generateSamples(fixture.runStore, {
      model: stage(r, 'sft').output!.model!, attributeModel: stage(r, 'attribute-model').output!.model!, prompt: 'Say something about the weather',
      attributes, samples: 4, maxNewTokens: 24, temperature: 0.7,
    });
    const [calm, loud] = [await gen('length=2,shouting=0'), await gen('shouting=4,length=2')];
    expect(loud.label).toBe('shouting:4,length:2');
    const shout = (g: typeof calm) => g.samples.reduce((t, x) => t + x.predicted!.shouting, 0) / g.samples.length;
    console.log(`align generate: shouting=0 → ${shout(calm).toFixed(2)} ${JSON.stringify(calm.samples[0].text)}; shouting=4 → ${shout(loud).toFixed(2)} ${JSON.stringify(loud.samples[0].text)}`);
    expect(shout(loud)).toBeGreaterThan(shout(calm) + 1);
    await expect(gen('shouting=4')).rejects.toThrow(/missing: length/);
    steered = r;
    await svc.runs.close();
  }, 600_000);

  slowIt('SteerLM 2.0 from the SteerLM model: a round raises log P(a|x,y) of the policy\'s samples', async () => {
    expect(steered, 'the SteerLM case runs first and gives the models').toBeDefined();
    const svc = service();
    const r = await runPipeline(svc, 'steerlm2', {
      model: stage(steered!, 'sft').output!.model, attributeModel: stage(steered!, 'attribute-model').output!.model, rounds: 2,
    });
    for (const s of r.stages) console.log(`  ${s.name}: ${s.output?.summary}`);
    // Every round samples the same prompts with the same seeds: the scores compare the policies.
    const curve = ['sample-1', 'sample-2', 'measure'].map((s) => stage(r, s).output!.metrics.meanLogPa);
    console.log(`steerlm2: mean log P(a|x,y) of the policy's samples by round ${curve.map((x) => x.toFixed(3)).join(' → ')}`);
    expect(curve[1]).toBeGreaterThan(curve[0]);
    expect(curve[2]).toBeGreaterThan(curve[0] + 0.2);
    await svc.runs.close();
  }, 600_000);

  slowIt('Constitutional AI: the judge prefers the revisions above chance; SL-CAI SFT, judged pairs (kept for audit), then DPO, or RM → PPO', async () => {
    // A tiny "helpful-only" model scripted by SFT (data/demo/make-cai.ts): rude answers, critiques,
    // kind revisions, and judging. Its context is widened to hold the judge's prompt.
    const base = path.join(tmp, 'tiny-llama-1k');
    cpSync(path.join(root, 'models/fixtures/tiny-llama'), base, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(base, 'config.json'), 'utf8'));
    writeFileSync(path.join(base, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: 1024 }));
    const runs = new RunService({ address: defaultTemporalAddress(), storeUri, queues: REF });
    const scripted = await runs.startRun('sft', {
      model: base, data: { train: path.join(root, 'data/demo/cai-assistant.jsonl'), validationFraction: 0.05 },
      trainer: { maxSteps: 150, globalBatchSize: 16, microBatchSize: 16, lr: 3e-3, minLr: 3e-4, warmupSteps: 0, checkpointEvery: 150, valEvery: 150, maxLength: 1024 },
    }, [], { runId: uniqueId('cai-scripted'), detach: false });
    expect(scripted.final!.state).toBe('COMPLETED');
    const svc = service();
    const r = await runPipeline(svc, 'cai', {
      model: scripted.final!.result!.exportUri, constitution: path.join(root, 'data/demo/cai-constitution.json'),
      response: { maxNewTokens: 48, temperature: 0.3 }, judge: { maxNewTokens: 48, temperature: 0.3 }, samplesPerPrompt: 2, maxPrompts: 24,
    });
    for (const s of r.stages) console.log(`  ${s.name}: ${s.output?.summary}`);
    expect(r.stages.map((s) => s.name)).toEqual(['critique-revise', 'sl-cai', 'judge', 'rl-dpo']);
    const cr = stage(r, 'critique-revise').output!.metrics;
    // The exchange behind each revision is kept with it: the first answer, the critique, the judge's answer.
    const exchange = JSON.parse((await store.get(store.keyOf(stage(r, 'critique-revise').output!.data!))).toString().split('\n')[0]).cai;
    console.log(`cai: first exchange ${JSON.stringify(exchange)}`);
    expect(Object.keys(exchange)).toEqual(['principle', 'initial', 'critique', 'revision', 'judge']);
    expect(cr.judgeAnswered).toBeGreaterThan(0.5);
    expect(cr.revisionPreferred).toBeGreaterThan(0.5);
    expect(cr.helpful).toBe(24);
    // Every judged pair is kept with the judge's own answer.
    const judged = (await store.get(store.keyOf(stage(r, 'judge').output!.data!))).toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(judged.length).toBe(stage(r, 'judge').output!.records);
    expect(judged.every((j) => typeof j.judge.raw === 'string' && j.chosen !== j.rejected)).toBe(true);
    expect(stage(r, 'rl-dpo').state).toBe('completed');
    // RL-CAI's other ending: a reward model on the judged pairs, then PPO against it on the red-team prompts.
    const p = await runPipeline(svc, 'cai', {
      model: scripted.final!.result!.exportUri, constitution: path.join(root, 'data/demo/cai-constitution.json'),
      response: { maxNewTokens: 48, temperature: 0.3 }, judge: { maxNewTokens: 48, temperature: 0.3 }, samplesPerPrompt: 2, maxPrompts: 16, rl: 'ppo',
      rm: { trainer: { maxSteps: 10, globalBatchSize: 4, microBatchSize: 4, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 256 } },
      ppo: { trainer: { maxSteps: 2, globalBatchSize: 8, microBatchSize: 8, lr: 1e-4, minLr: 1e-4, maxLength: 256 }, rollout: { promptsPerIteration: 8, maxNewTokens: 24, evalPrompts: 4 } },
    });
    for (const s of p.stages) console.log(`  ${s.name}: ${s.output?.summary}`);
    expect(p.stages.map((s) => s.name)).toEqual(['critique-revise', 'sl-cai', 'judge', 'rl-rm', 'rl-ppo']);
    expect(new Set(stage(p, 'rl-ppo').inputs)).toEqual(new Set([stage(p, 'sl-cai').output!.model, stage(p, 'rl-rm').output!.model, stage(p, 'judge').output!.data]));
    expect(p.output!.model).toBe(stage(p, 'rl-ppo').output!.model);
    await runs.close();
    await svc.runs.close();
  }, 600_000);
});
