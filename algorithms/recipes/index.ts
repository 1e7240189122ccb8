/**
 * THE RECIPE TABLE: every recipe Aligner runs, one entry each, as OP_TABLE lists the ops.
 * Everything outside this folder looks a recipe up here (`getRecipe`) and never compares names.
 */
import { ConfigError } from '../errors.js';
import { checkParallel, checkTrainer, layoutOf, parseWith } from '../config/common.js';
import type { BaseConfig } from '../config/common.js';
import { dpo } from './dpo.js';
import { kd } from './kd.js';
import { kto } from './kto.js';
import { rm } from './rm.js';
import { sft } from './sft.js';
import { steerlm2 } from './steerlm2.js';
import { grpo } from './online/grpo.js';
import { ppo } from './online/ppo.js';
import { reinforce } from './online/reinforce.js';
import { rs } from './online/rs.js';
import type { OnlineConfig } from './online/config.js';
import type { DatasetSpec, OfflineRecipe, OnlineRecipe, Recipe } from './types.js';

export const RECIPES = { sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs } as const;

export type RecipeName = keyof typeof RECIPES;
/** A parsed config of some recipe: the shared sections, plus the recipe's own (read by the recipe only). */
export type RecipeConfig = BaseConfig & Record<string, unknown>;

export const RECIPE_NAMES = Object.keys(RECIPES) as RecipeName[];

export function isRecipeName(name: string): name is RecipeName {
  return Object.hasOwn(RECIPES, name);
}

export function getRecipe(name: string): Recipe<RecipeConfig> {
  if (!isRecipeName(name)) throw new ConfigError(`unknown recipe "${name}"; available: ${RECIPE_NAMES.join(', ')} (align recipes lists them)`);
  return RECIPES[name] as unknown as Recipe<RecipeConfig>;
}

export function getOfflineRecipe(name: string): OfflineRecipe<RecipeConfig> {
  const r = getRecipe(name);
  if (r.kind !== 'offline') throw new ConfigError(`recipe "${name}" is an online recipe; it runs as an experience loop, not in training chunks`);
  return r;
}

export function getOnlineRecipe(name: string): OnlineRecipe<OnlineConfig> {
  const r = getRecipe(name);
  if (r.kind !== 'online') throw new ConfigError(`recipe "${name}" is an offline recipe; it trains in chunks over a dataset, not in an experience loop`);
  return r as unknown as OnlineRecipe<OnlineConfig>;
}

/** How a recipe's data is read, whatever its kind (prompts for the online recipes). */
export function getDataset(name: string): DatasetSpec<RecipeConfig, unknown> {
  return getRecipe(name) as unknown as DatasetSpec<RecipeConfig, unknown>;
}

/** Parse and check a raw config with the recipe's strict schema; every failing field is named. */
export function parseRecipeConfig(name: string, raw: unknown): RecipeConfig {
  const r = getRecipe(name);
  const cfg = parseWith(r.schema, raw, r.name) as RecipeConfig;
  checkTrainer(cfg.trainer);
  // An online recipe's parallel section lays out its roles (online/config.ts onlineParallelSchema), not a gang.
  if (r.kind === 'offline') {
    checkParallel(cfg);
    const { tp, pp } = layoutOf(cfg);
    if ((tp > 1 || pp > 1) && r.model(cfg).kind !== 'causal-lm') throw new ConfigError(`parallel.tp and parallel.pp split causal LMs; ${r.name} trains a ${r.model(cfg).kind} (use parallel.dp)`);
    if (pp > 1 && !r.pipelineParallel) throw new ConfigError(`parallel.pp > 1 trains sft only for now; ${r.name} needs parallel.pp: 1`);
    if (tp > 1 && r.tensorParallel === false) throw new ConfigError(`parallel.tp > 1: ${r.name} needs the whole vocabulary's logits on one rank; use parallel.dp`);
  }
  r.check?.(cfg);
  return cfg;
}

export type { OfflineRecipe, OnlineRecipe, Recipe, Headline, Metrics } from './types.js';
export type { OnlineConfig } from './online/config.js';
