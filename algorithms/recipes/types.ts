/**
 * What a recipe is: one readable unit, as an op is one entry of kernels/op-table.ts. Everything
 * outside algorithms/recipes/ (activities, data preparation, the CLI, the API, the progress
 * display) looks a recipe up in RECIPES and uses these fields; nothing else knows recipe names.
 *
 * Two kinds share the header (name, config, roles, metrics):
 *  - offline: trains in chunks over a prepared dataset, with optional inputs precomputed once
 *    (DPO reference log-probs, KD teacher top-K);
 *  - online: an experience loop of stages (generate → score → log-probs → values → advantages →
 *    train), each an idempotent activity writing to the rollout ledger (the online-RL issue).
 */
import type { z } from 'zod';
import type { AdamW } from '../../kernels/index.js';
import type { LoraHandle } from '../../models/lora.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import type { BaseConfig, TrainerConfig } from '../config/common.js';
import type { JsonlRecord } from '../data/jsonl.js';
import type { FieldSpec } from './fields.js';
import type { TrainableModel } from './model.js';

/** The models a run places, by role. */
export type RoleName = 'policy' | 'reference' | 'teacher' | 'reward' | 'critic';

export interface RoleSpec {
  /** What the role does in this recipe, for `align recipes` and the docs. */
  description: string;
  /** The config field that names its weights (`model`, `kd.teacher`, …). */
  configField: string;
  /** Whether the run trains it (and checkpoints it). */
  trains: boolean;
}

export type Metrics = Record<string, number>;

/** The one number that says whether a run is working, and which way is good. */
export interface Headline {
  metric: string;
  better: 'higher' | 'lower';
}

export interface MetricSpec {
  description: string;
}

/** How a recipe's trained model is built, loaded and saved. */
export type ModelKind = { kind: 'causal-lm' } | { kind: 'classifier'; numLabels: number; labelNames?: string[] };

/** Random access to prepared examples (packed binary shards, streamed from the store). */
export interface ExampleSource<E> {
  readonly count: number;
  getMany(indices: readonly number[]): Promise<E[]>;
}

export interface TokenizeContext<C> {
  tok: Tokenizer;
  config: C;
  /** The data file as the user named it, for error messages. */
  source: string;
  /** Told the line of each record that data.overlong = truncate cut (pass it on in the tokenizers' length options). */
  onTruncate?: (line: number) => void;
}

/** What preparation produced from one record: an example, or a record dropped by data.overlong. */
export type Prepared<E> = { example: E } | { dropped: string };

export interface StepContext<C> {
  model: TrainableModel;
  /** The adapters when the run trains LoRA (config.lora); `lora.asBase` is the reference policy. */
  lora?: LoraHandle | null;
  opt: AdamW;
  trainer: TrainerConfig;
  config: C;
  seed: number;
}

/** One optimizer step's loss (the global batch's), tokens and recipe metrics; gradients accumulated, not applied. */
export interface StepOutput {
  loss: number;
  tokens: number;
  metrics: Metrics;
}

export interface EvalOutput {
  loss: number;
  metrics: Metrics;
}

/** What a precompute's model is checked against: the student (the run's `model`). */
export interface StudentFacts {
  vocabSize: number;
  /** Whether the model's tokenizer gives the student's ids on a probe text (null: the model folder has no tokenizer). */
  sameTokenizer: boolean | null;
}

/**
 * Inputs computed once per run from a fixed model and stored next to the dataset, one record per
 * example (same index), in shards that are each durable on their own: a crashed precompute
 * resumes at the first missing shard.
 */
export interface Precompute<C, E, P> {
  /** Store folder name under runs/<id>/precompute/. */
  name: string;
  /** Whether this config needs it (DPO and KTO with LoRA take the reference from the adapters-off model instead). Default yes. */
  needed?(config: C): boolean;
  description: string;
  /** The role whose model computes it (reference = the initial policy, teacher = kd.teacher). */
  role: RoleName;
  /** The model folder of that role. */
  modelUri(config: C): string;
  fields: FieldSpec;
  /**
   * Checks against the model before any work (a teacher with another vocabulary or tokenizer, or
   * fewer positions than trainer.maxLength): ConfigError naming the field.
   */
  check?(model: TrainableModel, student: StudentFacts, config: C): void;
  /** No gradients: one record per example, in order; `beat` reports progress on long parts. */
  compute(model: TrainableModel, examples: readonly E[], config: C, beat?: () => void): Promise<P[]>;
}

interface RecipeHeader<C extends BaseConfig> {
  name: string;
  /** One line for `align recipes` and `align run --help`. */
  summary: string;
  /** The paper (and equation) the objective comes from. */
  paper: string;
  /** The whole strict config: the shared sections plus the recipe's own section. */
  schema: z.ZodType<C>;
  /** Cross-field checks beyond the schema (ConfigError naming the fields). */
  check?(config: C): void;
  /** A minimal config for `align config` and examples/, on the tiny fixture models. */
  example: Record<string, unknown>;
  roles: Partial<Record<RoleName, RoleSpec>>;
  metrics: Record<string, MetricSpec>;
  headline(config: C): Headline;
}

export interface OfflineRecipe<C extends BaseConfig = BaseConfig, E = unknown, P = unknown> extends RecipeHeader<C> {
  kind: 'offline';
  /** The record formats accepted, one line each (shown by `align recipes <name>`). */
  dataFormats: readonly string[];
  /** The prepared example's binary layout (packed token shards). */
  fields(config: C): FieldSpec;
  model(config: C): ModelKind;
  /** Records → examples, streamed. Formats that span records (alternating RM lines) pair them here. */
  prepare(records: AsyncIterable<JsonlRecord>, ctx: TokenizeContext<C>): AsyncIterable<Prepared<E>>;
  /** Smallest training set the config can use (DPO needs a global batch of pairs). */
  minTrainExamples?(config: C): number;
  /** Tokens an example contributes to throughput. */
  tokensOf(example: E): number;
  precompute?: Precompute<C, E, P>;
  /** Forward and backward of one global batch (pre[i] belongs to batch[i]); the runner clips and steps. */
  step(ctx: StepContext<C>, batch: readonly E[], pre: readonly P[] | null): Promise<StepOutput>;
  /** Held-out loss and metrics, no gradients. */
  evaluate(ctx: StepContext<C>, data: ExampleSource<E>, pre: ExampleSource<P> | null): Promise<EvalOutput>;
}

/** An online stage: an activity idempotent per (run, iteration, stage) that writes to the rollout ledger. */
export interface ExperienceStage {
  name: 'generate' | 'score' | 'logprobs' | 'values' | 'advantages' | 'train';
  description: string;
  role: RoleName;
}

export interface OnlineRecipe<C extends BaseConfig = BaseConfig> extends RecipeHeader<C> {
  kind: 'online';
  stages: readonly ExperienceStage[];
}

export type Recipe<C extends BaseConfig = BaseConfig> = OfflineRecipe<C, unknown, unknown> | OnlineRecipe<C>;
