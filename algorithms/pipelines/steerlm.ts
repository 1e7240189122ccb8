/**
 * SteerLM (Dong et al. 2023, SteerLM: Attribute Conditioned SFT as an (User-Steerable) Alternative
 * to RLHF, §3; NeMo-Aligner docs steerlm.rst): (1) a regression attribute model predicts each
 * attribute of a response (rm with rm.type = regression), (2) it annotates the SFT data with the
 * label string of its predictions (a durable, sharded data stage), (3) attribute-conditioned SFT
 * trains the response after its label, and (4) at inference the user asks for attribute values
 * (`align generate --attributes shouting=4`). The last stage measures the steering: samples asked
 * for a low and a high value of one attribute, scored by the attribute model.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseJsonl } from '../data/jsonl.js';
import { checkLabelAttributes } from '../data/steerlm.js';
import { dataOf, isRemote, localPathOf, modelField, modelOf, recipeSection, refuseWired } from './sections.js';
import type { PipelineDef, StageOutputs } from './types.js';

const positiveInt = z.number().int().positive();

export const steerEvalSchema = z.object({
  prompts: z.string().min(1).describe('Prompt JSONL to steer (TRL prompt/messages records).'),
  attribute: z.string().min(1).optional().describe('The attribute asked for low and high; default the first of `attributes`.'),
  low: z.number().default(0).describe('The low value asked for.'),
  high: z.number().default(4).describe('The high value asked for.'),
  others: z.record(z.string(), z.number()).default({}).describe('Values of the other attributes in the label (default each the middle level).'),
  samplesPerPrompt: positiveInt.default(2).describe('Samples per prompt and value.'),
  maxNewTokens: positiveInt.default(32).describe('Longest response, in tokens.'),
  temperature: z.number().positive().default(0.7).describe('Sampling temperature.'),
}).strict();

const schema = z.object({
  model: modelField,
  seed: z.number().int().nonnegative().default(0).describe('Seed of the sampling.'),
  attributes: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).min(1).describe('The attribute model\'s attributes, in its order (the label string lists them so): e.g. [quality, toxicity, humor, creativity, helpfulness, correctness, coherence, complexity, verbosity].'),
  levels: positiveInt.default(4).describe('Attribute values are integers 0…levels (NeMo-Aligner: 0…4); predictions are rounded and clamped to them.'),
  attributeModel: z.string().min(1).optional().describe('An attribute model to use instead of training one (a regression rm export); then the rm section is not used.'),
  rm: recipeSection('rm', 'model, rm.type, rm.attributes and rm.numAttributes'),
  data: z.string().min(1).describe('The SFT JSONL to annotate: chat records (TRL messages, NeMo conversations) or NeMo input/output.'),
  shardRecords: positiveInt.default(32).describe('Records per durable annotation shard.'),
  sft: recipeSection('sft', 'model and data.train'),
  evaluate: steerEvalSchema.optional().describe('Measure the steering at the end: samples asked for a low and a high value, scored by the attribute model.'),
}).strict();

export type SteerlmConfig = z.infer<typeof schema>;

const attributeModelOf = (c: SteerlmConfig, outputs: StageOutputs): string => c.attributeModel ?? modelOf(outputs, 'attribute-model');

/** The label NeMo-Aligner's annotation writes for values in the model's attribute order. */
export const middle = (levels: number): number => Math.round(levels / 2);

export const steerlm: PipelineDef<SteerlmConfig> = {
  name: 'steerlm',
  summary: 'SteerLM: regression attribute model → annotate the SFT data with attribute labels → attribute-conditioned SFT (→ steered samples measured)',
  schema,
  example: {
    model: 'models/fixtures/tiny-llama',
    attributes: ['shouting', 'length'],
    rm: {
      data: { train: 'data/demo/steerlm-rm.jsonl', validationFraction: 0.1 },
      trainer: { maxSteps: 60, globalBatchSize: 16, microBatchSize: 16, lr: 3e-3, minLr: 3e-4, warmupSteps: 0, checkpointEvery: 30, valEvery: 30, maxLength: 128 },
    },
    data: 'data/demo/steerlm-sft.jsonl',
    sft: {
      data: { validationFraction: 0.1 },
      trainer: { maxSteps: 80, globalBatchSize: 16, microBatchSize: 16, lr: 3e-3, minLr: 3e-4, warmupSteps: 0, checkpointEvery: 40, valEvery: 40, maxLength: 160 },
    },
    evaluate: { prompts: 'data/demo/steerlm-prompts.jsonl', attribute: 'shouting', low: 0, high: 4, samplesPerPrompt: 2, maxNewTokens: 24 },
  },
  stages: (c) => [...(c.attributeModel ? [] : ['attribute-model']), 'annotate', 'sft', ...(c.evaluate ? ['steer-eval'] : [])],
  stage(name, c, outputs, start) {
    refuseWired(c.rm, 'rm', ['model', 'rm.type', 'rm.attributes', 'rm.numAttributes']);
    refuseWired(c.sft, 'sft', ['model', 'data.train']);
    if (name === 'attribute-model') {
      const rm = (c.rm.rm as Record<string, unknown> | undefined) ?? {};
      return { kind: 'run', recipe: 'rm', config: { ...c.rm, seed: c.seed, model: start.model, rm: { ...rm, type: 'regression', attributes: c.attributes, numAttributes: c.attributes.length } } };
    }
    if (name === 'annotate') {
      return { kind: 'data', task: 'annotate', shards: 0, args: { attributeModel: attributeModelOf(c, outputs), data: c.data, attributes: c.attributes, levels: c.levels, shardRecords: c.shardRecords } };
    }
    if (name.startsWith('sft')) {
      const data = (c.sft.data as Record<string, unknown> | undefined) ?? {};
      return { kind: 'run', recipe: 'sft', config: { ...c.sft, seed: c.seed, model: start.model, data: { ...data, train: dataOf(outputs, 'annotate') } } };
    }
    const e = c.evaluate!;
    const attribute = e.attribute ?? c.attributes[0];
    const others = Object.fromEntries(c.attributes.filter((a) => a !== attribute).map((a) => [a, e.others[a] ?? middle(c.levels)]));
    return {
      kind: 'data', task: 'steer-eval', shards: 1,
      args: { policy: modelOf(outputs, 'sft'), attributeModel: attributeModelOf(c, outputs), attributes: c.attributes, attribute, values: [e.low, e.high], others, prompts: e.prompts, samplesPerPrompt: e.samplesPerPrompt, maxNewTokens: e.maxNewTokens, temperature: e.temperature, seed: c.seed },
    };
  },
  output: (_c, outputs) => ({ model: modelOf(outputs, 'sft') }),
  checkInputs(c) {
    if (!c.attributeModel && !(c.rm.data as Record<string, unknown> | undefined)?.train) throw new ConfigError('rm.data.train: the attribute model\'s training data is required (or give attributeModel to use a trained one)');
    if (c.evaluate?.attribute && !c.attributes.includes(c.evaluate.attribute)) throw new ConfigError(`evaluate.attribute "${c.evaluate.attribute}" is not one of attributes (${c.attributes.join(', ')})`);
    if (c.attributeModel) checkModelAttributes(c.attributeModel, c.attributes);
    // Records already labelled (NeMo-Aligner's SteerLM format) must speak of the same attributes.
    if (isRemote(c.data)) return;
    for (const rec of parseJsonl(readFileSync(localPathOf(c.data), 'utf8'), c.data)) {
      const turns = Array.isArray(rec.value.conversations) ? (rec.value.conversations as Record<string, unknown>[]) : [];
      for (const t of turns) {
        if (typeof t.label !== 'string') continue;
        try {
          checkLabelAttributes(t.label, c.attributes);
        } catch (e) {
          throw new ConfigError(`${c.data}:${rec.line}: ${(e as Error).message}`);
        }
      }
    }
  },
};

/** The attribute names an attribute model predicts (its config.json id2label, by index); [] for a remote folder (checked when loaded). */
export function modelAttributes(modelDir: string): string[] {
  if (isRemote(modelDir)) return [];
  const dir = localPathOf(modelDir);
  let cfg: { id2label?: Record<string, string> };
  try {
    cfg = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')) as typeof cfg;
  } catch (e) {
    throw new ConfigError(`attributeModel: ${dir} is not a model folder with a config.json (${(e as Error).message})`);
  }
  return Object.entries(cfg.id2label ?? {}).sort(([a], [b]) => Number(a) - Number(b)).map(([, n]) => n);
}

/** An attribute model's attribute names must be `attributes`, in order. */
export function checkModelAttributes(modelDir: string, attributes: readonly string[]): void {
  if (isRemote(modelDir)) return;
  const names = modelAttributes(modelDir);
  if (names.length !== attributes.length || names.some((n, i) => n !== attributes[i])) {
    throw new ConfigError(`attributeModel ${modelDir} predicts [${names.join(', ')}], but attributes is [${attributes.join(', ')}]; they must be the same, in the same order`);
  }
}
