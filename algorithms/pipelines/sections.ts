/**
 * Pieces every pipeline config shares: a recipe section (a partial config of one recipe, checked
 * by that recipe's own strict schema when its stage is planned), rounds, and the helpers that
 * build a stage's recipe config from a section and earlier stages' outputs.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { StageOutput, StageOutputs } from './types.js';

/**
 * A recipe's config without the fields the pipeline sets (model, and whatever a stage wires from
 * an earlier one): any other key of that recipe's config, checked by its schema when planned.
 */
export const recipeSection = (recipe: string, wired: string) =>
  z.record(z.string(), z.unknown()).default({}).describe(`The ${recipe} stage's config (as in \`align config ${recipe}\`), without ${wired}, which the pipeline sets.`);

export const roundsField = (what: string, byDefault = 2) => z.number().int().positive().max(100).default(byDefault).describe(`Rounds: each ${what} and starts from the model the round before trained.`);

export const modelField = z.string().min(1).describe('The policy the pipeline starts from: a Hugging Face folder (local path or s3:// URI). A scheduled round starts from the previous round\'s output instead.');

/** A stage's output, or an error naming the stage the plan expected to have run. */
export function outputOf(outputs: StageOutputs, stage: string): StageOutput {
  const o = outputs[stage];
  if (!o) throw new ConfigError(`pipeline stage "${stage}" has no recorded output; the stages run in order, so it must complete first`);
  return o;
}

export function modelOf(outputs: StageOutputs, stage: string): string {
  const m = outputOf(outputs, stage).model;
  if (!m) throw new ConfigError(`pipeline stage "${stage}" produced no model`);
  return m;
}

export function dataOf(outputs: StageOutputs, stage: string): string {
  const d = outputOf(outputs, stage).data;
  if (!d) throw new ConfigError(`pipeline stage "${stage}" produced no data`);
  return d;
}

/** Sections must not set what the pipeline wires (a second `model` would silently lose). */
export function refuseWired(section: Record<string, unknown>, where: string, keys: readonly string[]): void {
  for (const k of keys) {
    const parts = k.split('.');
    let v: unknown = section;
    for (const p of parts) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
    if (v !== undefined) throw new ConfigError(`${where}.${k} is set by the pipeline (from the stage before); remove it from ${where}`);
  }
}

/** A deep merge of plain objects: `over` wins; arrays and scalars are replaced. */
export function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlain(b) && isPlain(v) ? merge(b, v) : v;
  }
  return out;
}

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `name-3` → 3; stage names of round-based pipelines end in their round. */
export function roundOf(stage: string): number {
  const m = /-(\d+)$/.exec(stage);
  if (!m) throw new ConfigError(`pipeline stage "${stage}" names no round`);
  return Number(m[1]);
}

export const roundStages = (rounds: number, names: readonly string[]): string[] =>
  Array.from({ length: rounds }, (_, i) => names.map((n) => `${n}-${i + 1}`)).flat();

/**
 * Whether a model or data reference lives in a store (s3://…) rather than on this machine: the
 * pre-start checks read local files only; a remote one is checked by the stage that loads it.
 */
export const isRemote = (uri: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://');

/** A local path or file:// URI as a path. */
export const localPathOf = (uri: string): string => (uri.startsWith('file://') ? new URL(uri).pathname : uri);
