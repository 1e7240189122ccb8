/**
 * Constitutional AI (Bai et al. 2022, Constitutional AI: Harmlessness from AI Feedback, §3 SL-CAI
 * and §4 RL-CAI; NeMo-Aligner examples/nlp/cai): SL-CAI — the helpful model answers red-team
 * prompts, critiques its answer against a principle drawn from the constitution, and revises it
 * (one durable, sharded data stage that also has the judge compare each revision with the first
 * answer), then SFT on the revisions blended with a helpfulness set. RL-CAI — the SL-CAI model
 * samples several responses per prompt at spread temperatures, the AI judge (a causal LM of ours,
 * prompted with the constitution) picks the chosen and the rejected one and explains, every
 * judgement kept in the stage's data for audit; then DPO on those pairs, or a reward model and PPO.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseConstitution } from './constitution.js';
import { dataOf, isRemote, localPathOf, modelField, modelOf, recipeSection, refuseWired } from './sections.js';
import type { PipelineDef, StageSpec } from './types.js';

const positiveInt = z.number().int().positive();

const generation = z.object({
  maxNewTokens: positiveInt.default(64).describe('Longest generated turn, in tokens.'),
  temperature: z.number().positive().default(0.7).describe('Sampling temperature.'),
}).strict();

const schema = z.object({
  model: modelField,
  seed: z.number().int().nonnegative().default(0).describe('Seed of the principle draws, the sampling and the judge\'s tie-breaks.'),
  constitution: z.string().min(1).describe('The constitution: NeMo-Aligner\'s CritiqueRevisionInstructions.json, or {"principles": [{"critique", "revision"}], "judge"?, "fewShot"?} (algorithms/pipelines/constitution.ts).'),
  redTeam: z.string().min(1).describe('Red-team prompts (JSONL: TRL prompt or messages records).'),
  helpful: z.string().min(1).optional().describe('A helpfulness SFT set blended with the revisions (any SFT format), as NeMo-Aligner blends its SFT data blend.'),
  judgeModel: z.string().min(1).optional().describe('The AI judge, a causal LM prompted with the constitution; default `model`.'),
  maxPrompts: positiveInt.default(64).describe('Red-team prompts used (the first N).'),
  shardPrompts: positiveInt.default(8).describe('Prompts per durable shard.'),
  response: generation.default(generation.parse({})).describe('The first answer, the critique and the revision.'),
  judge: generation.extend({ maxNewTokens: positiveInt.default(48) }).default({ maxNewTokens: 48, temperature: 0.7 }).describe('The judge\'s answer (the JSON, then its explanation).'),
  samplesPerPrompt: z.number().int().min(2).default(4).describe('RL-CAI: responses per prompt from the SL-CAI model, at spread temperatures.'),
  temperatures: z.array(z.number().positive()).min(1).default([0.5, 0.8, 1.1, 1.4]).describe('RL-CAI: the temperatures the samples cycle through.'),
  sft: recipeSection('sft', 'model and data.train'),
  rl: z.enum(['dpo', 'ppo']).default('dpo').describe('RL-CAI\'s last step: dpo on the judged pairs, or ppo against a reward model trained on them (rm, then ppo).'),
  dpo: recipeSection('dpo', 'model and data.train'),
  rm: recipeSection('rm', 'model and data.train'),
  ppo: recipeSection('ppo', 'model, data.train and reward.model'),
}).strict();

export type CaiConfig = z.infer<typeof schema>;

/** RL-CAI's last stages, by `rl`: the model it ends with is the last one's. */
const RL_STAGES: Record<CaiConfig['rl'], readonly string[]> = { dpo: ['rl-dpo'], ppo: ['rl-rm', 'rl-ppo'] };

export const cai: PipelineDef<CaiConfig> = {
  name: 'cai',
  summary: 'Constitutional AI: critique → revision with principles (SL-CAI SFT), then an AI judge with the constitution ranks samples → DPO, or RM → PPO',
  schema,
  example: {
    model: 'path/to/a/helpful/chat/model',
    constitution: 'examples/cai/constitution.json',
    redTeam: 'examples/cai/red-team.jsonl',
    helpful: 'examples/cai/helpful.jsonl',
    sft: { data: { validationFraction: 0.1 }, trainer: { maxSteps: 40, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 20, valEvery: 20, maxLength: 1024 } },
    rl: 'dpo',
    dpo: { data: { validationFraction: 0.1 }, trainer: { maxSteps: 20, globalBatchSize: 4, microBatchSize: 4, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 20, valEvery: 20, maxLength: 1024 } },
  },
  exampleNotes: [
    'Set model to a helpful chat model (the judge defaults to it) whose context holds the judge\'s prompt (about 900 tokens here):',
    'the tiny fixture\'s 256 positions do not; test/e2e/pipelines.test.ts scripts one from it with data/demo/cai-assistant.jsonl.',
  ],
  stages: (c) => ['critique-revise', 'sl-cai', 'judge', ...RL_STAGES[c.rl]],
  stage(name, c, outputs, start) {
    refuseWired(c.sft, 'sft', ['model', 'data.train']);
    refuseWired(c.dpo, 'dpo', ['model', 'data.train']);
    refuseWired(c.rm, 'rm', ['model', 'data.train']);
    refuseWired(c.ppo, 'ppo', ['model', 'data.train', 'reward.model']);
    const shards = Math.ceil(c.maxPrompts / c.shardPrompts);
    const judgeModel = c.judgeModel ?? c.model;
    const common = { constitution: c.constitution, redTeam: c.redTeam, maxPrompts: c.maxPrompts, shardPrompts: c.shardPrompts, seed: c.seed, judgeModel, judge: c.judge };
    const withData = (section: Record<string, unknown>, train: string) => ({ ...section, data: { ...((section.data as Record<string, unknown> | undefined) ?? {}), train } });
    const plans: Record<string, () => StageSpec> = {
      'critique-revise': () => ({ kind: 'data', task: 'critique-revise', shards: shards + (c.helpful ? 1 : 0), args: { ...common, policy: start.model, helpful: c.helpful ?? null, response: c.response, promptShards: shards } }),
      'sl-cai': () => ({ kind: 'run', recipe: 'sft', config: { ...withData(c.sft, dataOf(outputs, 'critique-revise')), seed: c.seed, model: start.model } }),
      judge: () => ({ kind: 'data', task: 'judge-pairs', shards, args: { ...common, policy: modelOf(outputs, 'sl-cai'), samplesPerPrompt: c.samplesPerPrompt, temperatures: c.temperatures, maxNewTokens: c.response.maxNewTokens } }),
      'rl-dpo': () => ({ kind: 'run', recipe: 'dpo', config: { ...withData(c.dpo, dataOf(outputs, 'judge')), seed: c.seed, model: modelOf(outputs, 'sl-cai') } }),
      'rl-rm': () => ({ kind: 'run', recipe: 'rm', config: { ...withData(c.rm, dataOf(outputs, 'judge')), seed: c.seed, model: modelOf(outputs, 'sl-cai') } }),
      'rl-ppo': () => {
        const reward = (c.ppo.reward as Record<string, unknown> | undefined) ?? {};
        // The judged pairs' prompts (chat messages, as the reward model read them) are PPO's prompts.
        return { kind: 'run', recipe: 'ppo', config: { ...withData(c.ppo, dataOf(outputs, 'judge')), seed: c.seed, model: modelOf(outputs, 'sl-cai'), reward: { ...reward, model: modelOf(outputs, 'rl-rm') } } };
      },
    };
    return plans[name]();
  },
  output: (c, outputs) => ({ model: modelOf(outputs, RL_STAGES[c.rl].at(-1)!) }),
  checkInputs(c) {
    if (isRemote(c.constitution)) return; // read and checked by the critique stage
    let text: string;
    try {
      text = readFileSync(localPathOf(c.constitution), 'utf8');
    } catch (e) {
      throw new ConfigError(`constitution: cannot read ${c.constitution} (${(e as Error).message})`);
    }
    parseConstitution(text, c.constitution); // a file without principles is a ConfigError naming it
  },
};
