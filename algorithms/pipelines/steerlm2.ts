/**
 * SteerLM 2.0 rounds (Wang et al. 2024, HelpSteer2, §4.5; NeMo-Aligner ships only the training
 * half): each round the current policy Q′ samples n responses per (prompt, target attributes),
 * each scored by the attribute model (log P(a|x,y)), the SFT model (log P(y|x)) and the sampler
 * (log Q′(y|a,x)); the steerlm2 recipe then trains Σ(w′ − b′)·NLL(y). The next round samples from
 * the model this one trained; a last stage samples once more to measure the final policy.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseJsonl } from '../data/jsonl.js';
import { checkLabelAttributes } from '../data/steerlm.js';
import { dataOf, isRemote, localPathOf, modelField, modelOf, recipeSection, refuseWired, roundOf, roundsField, roundStages } from './sections.js';
import { modelAttributes } from './steerlm.js';
import type { PipelineDef, PipelineStart, StageOutputs } from './types.js';

const positiveInt = z.number().int().positive();

const schema = z.object({
  model: modelField,
  seed: z.number().int().nonnegative().default(0).describe('Seed of the prompt order and the sampling.'),
  rounds: roundsField('samples and scores with the current policy, then trains SteerLM 2.0 on the scored samples'),
  attributeModel: z.string().min(1).describe('The regression attribute model (a SteerLM rm export): log P(a|x,y).'),
  sftModel: z.string().min(1).optional().describe('The model of log P(y|x); default `model` (the SteerLM model the first round starts from).'),
  prompts: z.string().min(1).describe('Prompts with target attributes: NeMo-Aligner SteerLM2 records ({system, prompt_turns, label}; responses ignored) or TRL {"prompt" | "messages", "label"}.'),
  promptsPerRound: positiveInt.default(32).describe('Prompts sampled each round (round r takes the r-th block of a seeded shuffle, wrapping).'),
  samplesPerPrompt: z.number().int().min(2).default(4).describe('n: responses per prompt (the weights are normalised over them).'),
  maxNewTokens: positiveInt.default(32).describe('Longest response, in tokens.'),
  temperature: z.number().positive().default(1).describe('Sampling temperature of Q′.'),
  levels: positiveInt.default(4).describe('Attribute levels 0…levels of log P(a|x,y).'),
  sigma: z.number().positive().default(1).describe('σ of log P(a|x,y): how sharply predictions near the target are preferred (about the attribute model\'s RMSE).'),
  shardPrompts: positiveInt.default(8).describe('Prompts per durable shard.'),
  steerlm2: recipeSection('steerlm2', 'model and data.train'),
}).strict();

export type Steerlm2Config = z.infer<typeof schema>;

const policyBefore = (round: number, outputs: StageOutputs, start: PipelineStart) => (round === 1 ? start.model : modelOf(outputs, `train-${round - 1}`));

export const steerlm2Rounds: PipelineDef<Steerlm2Config> = {
  name: 'steerlm2',
  summary: 'SteerLM 2.0 rounds: sample n per (prompt, attributes) from the current policy, score log P(a|x,y), log P(y|x), log Q′ → train Σ(w′ − b′)·NLL',
  schema,
  example: {
    model: 'models/fixtures/tiny-llama',
    attributeModel: 'path/to/a/steerlm/attribute-model/export',
    prompts: 'data/demo/steerlm2-prompts.jsonl',
    rounds: 2, promptsPerRound: 32, samplesPerPrompt: 8, maxNewTokens: 24,
    steerlm2: {
      data: { validationFraction: 0.125 },
      trainer: { maxSteps: 14, globalBatchSize: 2, microBatchSize: 2, lr: 3e-4, minLr: 3e-4, warmupSteps: 0, checkpointEvery: 14, valEvery: 14, maxLength: 160 },
    },
  },
  exampleNotes: [
    'Starts from a SteerLM pipeline\'s outputs: set model to its sft export and attributeModel to its attribute-model export,',
    'e.g. --set model=.state/store/runs/<steerlm id>.sft/export --set attributeModel=.state/store/runs/<steerlm id>.attribute-model/export',
  ],
  stages: (c) => [...roundStages(c.rounds, ['sample', 'train']), 'measure'],
  stage(name, c, outputs, start) {
    refuseWired(c.steerlm2, 'steerlm2', ['model', 'data.train', 'steerlm2.chatTemplate']);
    const args = (policy: string, round: number) => ({
      policy, sftModel: c.sftModel ?? c.model, attributeModel: c.attributeModel, prompts: c.prompts,
      promptsPerRound: c.promptsPerRound, samplesPerPrompt: c.samplesPerPrompt, maxNewTokens: c.maxNewTokens, temperature: c.temperature,
      levels: c.levels, sigma: c.sigma, shardPrompts: c.shardPrompts, seed: c.seed, round, seedRound: start.round,
    });
    const shards = Math.ceil(c.promptsPerRound / c.shardPrompts);
    if (name === 'measure') return { kind: 'data', task: 'steerlm2-sample', args: args(modelOf(outputs, `train-${c.rounds}`), 1 + (start.round - 1) * c.rounds), shards };
    const round = roundOf(name);
    // Round r of a scheduled pipeline's n-th run draws other prompts than round r of the first.
    const draw = round + (start.round - 1) * c.rounds;
    if (name.startsWith('sample-')) return { kind: 'data', task: 'steerlm2-sample', args: args(policyBefore(round, outputs, start), draw), shards };
    const data = (c.steerlm2.data as Record<string, unknown> | undefined) ?? {};
    return { kind: 'run', recipe: 'steerlm2', config: { ...c.steerlm2, seed: c.seed, model: policyBefore(round, outputs, start), data: { ...data, train: dataOf(outputs, `sample-${round}`) } } };
  },
  output: (c, outputs) => ({ model: modelOf(outputs, `train-${c.rounds}`) }),
  checkInputs(c) {
    // Every prompt's target must speak of the attribute model's attributes (read from its
    // config.json; with a remote model or prompt file, the sampling stage checks each record).
    if (isRemote(c.attributeModel) || isRemote(c.prompts)) return;
    const names = modelAttributes(c.attributeModel);
    for (const rec of parseJsonl(readFileSync(localPathOf(c.prompts), 'utf8'), c.prompts)) {
      const label = rec.value.label;
      if (typeof label !== 'string') throw new ConfigError(`${c.prompts}:${rec.line}: missing key "label": the target attributes, e.g. "${names.map((n) => `${n}:4`).join(',')}"`);
      try {
        checkLabelAttributes(label, names);
      } catch (e) {
        throw new ConfigError(`${c.prompts}:${rec.line}: ${(e as Error).message}`);
      }
    }
  },
};
