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
import type { AdamW, Tensor } from '../../kernels/index.js';
import type { LoraHandle } from '../../models/lora.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import type { AnyRecipeConfig, BaseConfig, TrainerConfig } from '../config/common.js';
import type { OnlineConfig } from './online/config.js';
import type { JsonlRecord } from '../data/jsonl.js';
import type { FieldSpec } from './fields.js';
import type { TrainableModel } from './model.js';
import type { DataParallel } from '../train/data-parallel.js';
import type { PipelineParallel } from '../train/pipeline.js';

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
  /**
   * How the ranks' values combine under data parallel: 'sum' for a rank's share of the global
   * batch's mean (token-weighted terms, like the loss), 'mean' (default) for each rank's own mean.
   */
  dataParallel?: 'sum' | 'mean';
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
  /** This rank's group, gradient buckets and sharded optimizer when the step runs data parallel. */
  dataParallel?: DataParallel | null;
  /** This rank's pipeline groups when the model is one pipeline stage (sft only). */
  pipeline?: PipelineParallel | null;
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

interface RecipeHeader<C extends AnyRecipeConfig> {
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
  /** Config fields that name a local module or file besides the data and the roles' models (`reward.function`), resolved like them; a `#name` suffix is kept. */
  files?: readonly string[];
  metrics: Record<string, MetricSpec>;
  headline(config: C): Headline;
}

/** How a recipe reads its data: the record formats, the binary layout, and the streaming preparation. */
export interface DatasetSpec<C, E> {
  /** The record formats accepted, one line each (shown by `align recipes <name>`). */
  dataFormats: readonly string[];
  /** The prepared example's binary layout (packed token shards). */
  fields(config: C): FieldSpec;
  /** Records → examples, streamed. Formats that span records (alternating RM lines) pair them here. */
  prepare(records: AsyncIterable<JsonlRecord>, ctx: TokenizeContext<C>): AsyncIterable<Prepared<E>>;
  /** Smallest training set the config can use (DPO needs a global batch of pairs). */
  minTrainExamples?(config: C): number;
  /** Tokens an example contributes to throughput. */
  tokensOf(example: E): number;
}

export interface OfflineRecipe<C extends BaseConfig = BaseConfig, E = unknown, P = unknown> extends RecipeHeader<C>, DatasetSpec<C, E> {
  kind: 'offline';
  model(config: C): ModelKind;
  /** Its step can run as one stage of a pipeline (parallel.pp > 1): its forward and backward go through the 1F1B schedule. */
  pipelineParallel?: boolean;
  /** False when its step needs the whole vocabulary's logits on one rank (no parallel.tp > 1). Default true. */
  tensorParallel?: boolean;
  precompute?: Precompute<C, E, P>;
  /** Forward and backward of one global batch (pre[i] belongs to batch[i]); the runner clips and steps. */
  step(ctx: StepContext<C>, batch: readonly E[], pre: readonly P[] | null): Promise<StepOutput>;
  /** Held-out loss and metrics, no gradients. */
  evaluate(ctx: StepContext<C>, data: ExampleSource<E>, pre: ExampleSource<P> | null): Promise<EvalOutput>;
}

/** The stages of an experience loop, in the order an iteration runs them. */
export const STAGE_NAMES = ['generate', 'score', 'logprobs', 'values', 'advantages', 'train'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** An online stage: an activity idempotent per (run, iteration, stage) that writes to the rollout ledger. */
export interface ExperienceStage {
  name: StageName;
  description: string;
  role: RoleName;
}

/** What an iteration's advantage stage sees of one rollout: host arrays over its response tokens. */
export interface ScoredRollout {
  /** Index of its prompt in the training split (samples of one prompt share it). */
  prompt: number;
  ended: boolean;
  /** Response tokens. */
  length: number;
  reward: number;
  /** ℓ_old(t), the sampling policy's log-prob of each response token (recomputed, not the sampler's). */
  old: number[] | null;
  /** ℓ_ref(t) of the reference policy; null when the recipe computes none. */
  ref: number[] | null;
  /** V(t) of the critic (PPO). */
  values: number[] | null;
}

export interface CriticSpec {
  /** The model folder the critic starts from (a reward model, or the policy with a fresh head). */
  modelUri: string;
  lr: number;
  valueClip: number;
}

/** The state an experience loop carries between iterations (checkpointed with the weights). */
export interface LoopState {
  /** The KL coefficient β in use (changed by an adaptive controller). */
  klBeta: number;
}

export interface AdvantageOutput {
  /** Per rollout: per-token advantages (a sequence advantage repeated), PPO's returns, and whether it trains. */
  rows: { advantages: number[]; returns: number[] | null; trains: boolean }[];
  metrics: Metrics;
  state: LoopState;
}

/** One training micro-batch on a token grid [m, T−1] (flat arrays, row-major, 0 off the response). */
export interface TrainGrid {
  /** log π(t) of the policy being trained, with its gradient: [m, T−1]. */
  logp: Tensor;
  old: Float64Array;
  ref: Float64Array | null;
  advantages: Float64Array;
  /** 1 on the response tokens that train. */
  mask: Float64Array;
  /** Masked tokens of the whole mini-batch (the loss is their mean). */
  denominator: number;
}

export interface OnlineRecipe<C extends AnyRecipeConfig = OnlineConfig, E = unknown> extends RecipeHeader<C>, DatasetSpec<C, E> {
  kind: 'online';
  /** The stages one iteration runs, in order (a subset of STAGE_NAMES). */
  stages: readonly ExperienceStage[];
  samplesPerPrompt(config: C): number;
  /** Passes over each rollout batch (PPO's epochs; 1 for the others). */
  epochs(config: C): number;
  initialState(config: C): LoopState;
  /** Rewards (+ log-probs, values) → advantages and which rollouts train, with the iteration's metrics. */
  advantages(rollouts: readonly ScoredRollout[], config: C, state: LoopState): AdvantageOutput;
  /** The actor's loss on a micro-batch (summed over its masked tokens / grid.denominator). */
  actorLoss(grid: TrainGrid, config: C): Tensor;
  /** The critic (PPO): the folder it starts from, its learning rate and value clip; absent when the recipe has none. */
  critic?(config: C): CriticSpec;
  /** ε of a clipped surrogate, for the clip-fraction metric; absent when the loss has no ratio. */
  policyClip?(config: C): number;
}

export type Recipe<C extends BaseConfig = BaseConfig> = OfflineRecipe<C, unknown, unknown> | OnlineRecipe<C, unknown>;
