/**
 * The config sections every recipe shares (model, seed, data, trainer), parsed with zod. Unknown
 * keys are rejected (strict), every field carries its meaning and default in `.describe()` (which
 * `align config <recipe>` prints as comments), and cross-field checks give actionable errors.
 * The parsed config is stored in every checkpoint manifest.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const positiveInt = z.number().int().positive();

export const trainerSchema = z.object({
  maxSteps: positiveInt.default(100).describe('Optimizer steps to run.'),
  globalBatchSize: positiveInt.default(8).describe('Examples per optimizer step (summed over micro-batches).'),
  microBatchSize: positiveInt.default(8).describe('Examples per forward/backward; globalBatchSize must be a multiple of it.'),
  lr: z.number().positive().default(1e-4).describe('Peak learning rate (after warmup).'),
  minLr: z.number().nonnegative().default(1e-5).describe('Learning rate at the end of the cosine decay.'),
  warmupSteps: z.number().int().nonnegative().default(10).describe('Linear warmup steps.'),
  weightDecay: z.number().nonnegative().default(0.01).describe('AdamW decoupled weight decay (Loshchilov & Hutter 2019).'),
  beta1: z.number().min(0).lt(1).default(0.9).describe('AdamW β1.'),
  beta2: z.number().min(0).lt(1).default(0.98).describe('AdamW β2 (NeMo-Aligner uses 0.98).'),
  maxGradNorm: z.number().nonnegative().default(1.0).describe('Global gradient-norm clip; 0 disables it.'),
  valEvery: z.number().int().nonnegative().default(20).describe('Validate every N steps (0 = only at the start and the end).'),
  checkpointEvery: z.number().int().nonnegative().default(50).describe('Checkpoint every N steps (0 = only at the end).'),
  keepCheckpoints: positiveInt.default(2).describe('Keep the last K full checkpoints; older ones are pruned.'),
  continueAsNewEvery: positiveInt.default(50).describe('Start a fresh workflow history (continueAsNew) every N training chunks.'),
  hangSeconds: z.number().int().nonnegative().default(1800).describe(
    'Hang watchdog: a training activity that keeps heartbeating but reports no progress (no new step, batch or phase) for this long is failed as retryable, and the run moves from its last checkpoint; the event is recorded in the run status. 0 turns it off.',
  ),
  maxLength: positiveInt.default(512).describe("Longest tokenized sequence; must not exceed the model's max_position_embeddings (see data.overlong)."),
}).strict();

export const OVERLONG_POLICIES = ['error', 'drop', 'truncate'] as const;

export const dataSchema = z.object({
  train: z.string().min(1).describe('Training JSONL: a local path or an s3:// URI.'),
  validation: z.string().min(1).optional().describe('Validation JSONL; when absent, validationFraction of train is held out.'),
  validationFraction: z.number().min(0).lt(1).default(0.1).describe('Fraction of train held out for validation when no validation file is given.'),
  overlong: z.enum(OVERLONG_POLICIES).default('error').describe(
    'Records longer than trainer.maxLength: error (fail preparation, naming file and line), drop (skip, counted in the preparation report) or truncate (cut the response; dropped when nothing is left to train on).',
  ),
}).strict();

export const loraSchema = z.object({
  rank: positiveInt.default(8).describe('Rank r of the adapters (Hu et al. 2021, LoRA, eq. 3).'),
  alpha: z.number().positive().default(16).describe('Scale numerator α: the update is scaled by α/r.'),
  targetModules: z.array(z.string().min(1)).min(1).default(['q_proj', 'v_proj']).describe('Linears to adapt, by the last part of their Hugging Face name: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (Llama family; GPT-2\'s Conv1D projections are not supported yet).'),
}).strict();

export const parallelSchema = z.object({
  dp: positiveInt.default(1).describe('Data-parallel ranks: each trains on its share of every global batch; gradients are summed in buckets during the backward.'),
  tp: positiveInt.default(1).describe('Tensor-parallel ranks (Megatron): attention heads, MLP features and the vocabulary split across them. Causal-LM recipes without LoRA.'),
  pp: positiveInt.default(1).describe('Pipeline stages (1F1B): consecutive layers per stage. sft only for now.'),
  shardOptimizer: z.boolean().default(false).describe('ZeRO-1: shard the AdamW moments over the data-parallel ranks (1/dp of the optimizer memory each); the same updates bit for bit.'),
}).strict();

export const baseSchema = z.object({
  model: z.string().min(1).describe('Hugging Face model folder (local path or s3:// URI) to start from.'),
  seed: z.number().int().nonnegative().default(0).describe('Seed for data order, held-out split and any sampling.'),
  data: dataSchema.describe('Where the data is, and how it is split and cut.'),
  trainer: trainerSchema.default(trainerSchema.parse({})).describe('Optimisation and checkpointing; shared by every offline recipe.'),
  cost: z.object({
    perDeviceHour: z.number().nonnegative().optional().describe('Price of one device-hour (a GPU, or a CPU worker\'s compute slot); align status and the API then show what the run cost.'),
    currency: z.string().min(1).default('USD').describe('Currency of perDeviceHour, as shown.'),
  }).strict().optional().describe('What a device-hour costs: the run\'s device-seconds by phase turned into money.'),
  budget: z.object({
    maxDeviceHours: z.number().positive().optional().describe('Pause the run (status says why) once it has used this many device-hours; align resume goes on past it.'),
  }).strict().optional().describe('Limits on what the run may use.'),
  tracking: z.object({
    tensorboard: z.boolean().default(false).describe('Also write TensorBoard event files to runs/<run>/tensorboard/ in the store (tensorboard --logdir <that folder>), one file per chunk, rewritten when a chunk is retried.'),
    mlflow: z.object({
      uri: z.string().regex(/^https?:\/\/[^\s/]+/, 'an http(s):// address of an MLflow tracking server').describe('MLflow tracking server (http://host:5000); the worker sends MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and _PASSWORD, when set.'),
      experiment: z.string().min(1).default('aligner').describe('Experiment the run is logged under (created when missing).'),
    }).strict().optional().describe('Also send every metric to an MLflow-compatible tracking server, as the chunks commit.'),
  }).strict().optional().describe('Trackers the metrics ledger is copied to. The ledger stays the record: a tracker that is down is warned about, never fails the run.'),
  parallel: parallelSchema.optional().describe(
    'Run as a gang of dp × tp × pp ranks, one per compute worker process (ranks meet over shared memory, so one host for now). The workflow places every rank, runs each chunk on all of them together, and restarts the whole gang from the last checkpoint when a rank is lost. Checkpoints are ordinary Hugging Face folders whatever the layout.',
  ),
  lora: loraSchema.optional().describe(
    'Train LoRA adapters instead of every weight (causal-LM recipes). The reference policy of dpo and kto is then the model with its adapters off, computed in each step: no second copy, nothing precomputed. Checkpoints keep the adapters (PEFT layout) and the merged model, which is what exports hold.',
  ),
}).strict();

export type TrainerConfig = z.infer<typeof trainerSchema>;
export type DataConfig = z.infer<typeof dataSchema>;
export type BaseConfig = z.infer<typeof baseSchema>;
export type LoraSettings = z.infer<typeof loraSchema>;
export type ParallelConfig = z.infer<typeof parallelSchema>;
/** What every recipe's config has: the base sections, with a parallel section of its kind's own shape (a gang offline, role layouts online). */
export type AnyRecipeConfig = Omit<BaseConfig, 'parallel'> & { parallel?: object };

/** The run's layout: every size 1 when the config has no parallel section. */
export function layoutOf(c: Pick<BaseConfig, 'parallel'>): ParallelConfig & { world: number } {
  const p = c.parallel ?? { dp: 1, tp: 1, pp: 1, shardOptimizer: false };
  return { ...p, world: p.dp * p.tp * p.pp };
}
export type TrackingConfig = NonNullable<BaseConfig['tracking']>;

/** Cross-field checks every recipe shares. */
export function checkTrainer(t: TrainerConfig): void {
  if (t.globalBatchSize % t.microBatchSize !== 0) {
    throw new ConfigError(`trainer.globalBatchSize (${t.globalBatchSize}) must be a multiple of trainer.microBatchSize (${t.microBatchSize})`);
  }
  if (t.minLr > t.lr) throw new ConfigError(`trainer.minLr (${t.minLr}) must not exceed trainer.lr (${t.lr})`);
  if (t.warmupSteps > t.maxSteps) throw new ConfigError(`trainer.warmupSteps (${t.warmupSteps}) must not exceed trainer.maxSteps (${t.maxSteps})`);
}

/** The layout against the batch sizes (each data-parallel rank trains whole micro-batches). */
export function checkParallel(c: Pick<BaseConfig, 'parallel' | 'trainer' | 'lora'>): void {
  const { dp, world } = layoutOf(c);
  if (world > 64) throw new ConfigError(`parallel: dp × tp × pp = ${world} ranks; at most 64`);
  const t = c.trainer;
  if (t.globalBatchSize % (dp * t.microBatchSize) !== 0) {
    throw new ConfigError(`trainer.globalBatchSize (${t.globalBatchSize}) must be a multiple of parallel.dp × trainer.microBatchSize (${dp} × ${t.microBatchSize})`);
  }
  if (world > 1 && c.lora) throw new ConfigError('parallel: LoRA runs train on one worker for now; remove the parallel section or lora');
}

/** trainer.maxLength against the model's positions (config.json max_position_embeddings / n_positions). */
export function checkMaxLength(t: TrainerConfig, contextWindow: number, modelField = 'model'): void {
  if (t.maxLength > contextWindow) {
    throw new ConfigError(`trainer.maxLength (${t.maxLength}) exceeds the ${modelField}'s max_position_embeddings (${contextWindow}); lower trainer.maxLength to at most ${contextWindow}`);
  }
}

/** Parse with a schema, turning zod's issues into one ConfigError that names each failing field. */
export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const field = i.path.join('.') || '(root)';
    if (i.code === 'unrecognized_keys') return `${i.path.length ? `${field}: ` : ''}unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${field}: ${i.message}`;
  });
  throw new ConfigError(`invalid ${what} config:\n  ${lines.join('\n  ')}`);
}

/** Parse a `--set key.path=value` value: JSON when it parses (numbers, booleans, null, arrays), else a string. */
function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** Apply `a.b.c=value` overrides to a plain config object (a copy is returned). */
export function applyOverrides(config: Record<string, unknown>, sets: readonly string[]): Record<string, unknown> {
  const out = structuredClone(config);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects key=value, got "${s}"`);
    const path = s.slice(0, eq).split('.');
    let node: Record<string, unknown> = out;
    for (const k of path.slice(0, -1)) {
      const next = node[k];
      if (next === undefined) node[k] = {};
      else if (next === null || typeof next !== 'object' || Array.isArray(next)) throw new ConfigError(`--set ${s}: "${k}" is not a section`);
      node = node[k] as Record<string, unknown>;
    }
    node[path.at(-1)!] = parseValue(s.slice(eq + 1));
  }
  return out;
}
