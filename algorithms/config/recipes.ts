/** The SFT and DPO recipe configs, with their recipe-specific sections. */
import { z } from 'zod';
import { PREFERENCE_LOSSES } from '../losses/dpo.js';
import { ConfigError } from '../errors.js';
import { baseSchema, checkTrainer, parseWith } from './common.js';

export const sftConfigSchema = baseSchema.extend({
  sft: z.object({
    /** Chat template override (Jinja); default the tokenizer's own, else ChatML. */
    chatTemplate: z.string().optional(),
  }).strict().default({}),
}).strict();

export const dpoConfigSchema = baseSchema.extend({
  dpo: z.object({
    /** β, the KL penalty strength (NeMo-Aligner `ref_policy_kl_penalty`). Default 0.2. */
    beta: z.number().positive().default(0.2),
    /** Which preference loss (see algorithms/losses/dpo.ts). Default 'dpo'. */
    loss: z.enum(PREFERENCE_LOSSES as [string, ...string[]]).default('dpo'),
    /** Weight of an SFT term on chosen responses. Default 0. */
    sftWeight: z.number().nonnegative().default(0),
    /** Average token log-probs over the response instead of summing. Default false. */
    averageLogProbs: z.boolean().default(false),
    /** Scale of the ground-truth reward difference for RPO. Default 1. */
    gtRewardScale: z.number().default(1),
  }).strict().default({ beta: 0.2, loss: 'dpo', sftWeight: 0, averageLogProbs: false, gtRewardScale: 1 }),
}).strict();

export type SftConfig = z.infer<typeof sftConfigSchema>;
export type DpoConfig = z.infer<typeof dpoConfigSchema>;
export type RecipeName = 'sft' | 'dpo';

export function parseRecipeConfig(recipe: 'sft', raw: unknown): SftConfig;
export function parseRecipeConfig(recipe: 'dpo', raw: unknown): DpoConfig;
export function parseRecipeConfig(recipe: RecipeName, raw: unknown): SftConfig | DpoConfig;
export function parseRecipeConfig(recipe: RecipeName, raw: unknown): SftConfig | DpoConfig {
  if (recipe !== 'sft' && recipe !== 'dpo') throw new ConfigError(`unknown recipe "${String(recipe)}"; available: sft, dpo`);
  const cfg = recipe === 'sft' ? parseWith(sftConfigSchema, raw, 'sft') : parseWith(dpoConfigSchema, raw, 'dpo');
  checkTrainer(cfg.trainer);
  return cfg;
}
