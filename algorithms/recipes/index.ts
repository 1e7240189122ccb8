/**
 * THE RECIPE TABLE: every recipe Aligner runs, one entry each, as OP_TABLE lists the ops.
 * Everything outside this folder looks a recipe up here (`getRecipe`) and never compares names.
 */
import { ConfigError } from '../errors.js';
import { checkTrainer, parseWith } from '../config/common.js';
import type { BaseConfig } from '../config/common.js';
import { dpo } from './dpo.js';
import { kd } from './kd.js';
import { kto } from './kto.js';
import { rm } from './rm.js';
import { sft } from './sft.js';
import type { OfflineRecipe, Recipe } from './types.js';

export const RECIPES = { sft, dpo, rm, kd, kto } as const;

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

/** Parse and check a raw config with the recipe's strict schema; every failing field is named. */
export function parseRecipeConfig(name: string, raw: unknown): RecipeConfig {
  const r = getRecipe(name);
  const cfg = parseWith(r.schema, raw, r.name) as RecipeConfig;
  checkTrainer(cfg.trainer);
  r.check?.(cfg);
  return cfg;
}

export type { OfflineRecipe, OnlineRecipe, Recipe, Headline, Metrics } from './types.js';
