/**
 * THE PIPELINE TABLE: every multi-stage pipeline Aligner runs, one entry each, as RECIPES lists
 * the recipes. workflows/pipeline.ts runs any entry; the CLI, the API and the schedules look
 * pipelines up here and never compare names.
 */
import { ConfigError } from '../errors.js';
import { parseWith } from '../config/common.js';
import { cai } from './cai.js';
import { iterativeDpo } from './iterative-dpo.js';
import { rlhf } from './rlhf.js';
import { rsRounds } from './rs.js';
import { spin } from './spin.js';
import { steerlm } from './steerlm.js';
import { steerlm2Rounds } from './steerlm2.js';
import type { PipelineDef } from './types.js';

export const PIPELINES = { rlhf, steerlm, steerlm2: steerlm2Rounds, cai, 'iterative-dpo': iterativeDpo, spin, rs: rsRounds } as const;

export type PipelineName = keyof typeof PIPELINES;
export type PipelineConfig = Record<string, unknown>;

export const PIPELINE_NAMES = Object.keys(PIPELINES) as PipelineName[];

export function isPipelineName(name: string): name is PipelineName {
  return Object.hasOwn(PIPELINES, name);
}

export function getPipeline(name: string): PipelineDef<PipelineConfig> {
  if (!isPipelineName(name)) throw new ConfigError(`unknown pipeline "${name}"; available: ${PIPELINE_NAMES.join(', ')}`);
  return PIPELINES[name] as unknown as PipelineDef<PipelineConfig>;
}

/** Parse a raw pipeline config with the pipeline's strict schema; every failing field is named. */
export function parsePipelineConfig(name: string, raw: unknown): PipelineConfig {
  const p = getPipeline(name);
  return parseWith(p.schema, raw, `${p.name} pipeline`) as PipelineConfig;
}

export type { PipelineDef, StageOutput, StageOutputs, StageSpec, PipelineStart, DataTaskName } from './types.js';
