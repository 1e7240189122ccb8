/**
 * Recipe configuration shared by SFT and DPO, parsed with zod. Unknown keys are rejected (strict),
 * every field documents its meaning and default, and cross-field checks give actionable errors.
 * The parsed config is stored in every checkpoint manifest.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const positiveInt = z.number().int().positive();

export const trainerSchema = z.object({
  /** Optimizer steps to run. Default 100. */
  maxSteps: positiveInt.default(100),
  /** Sequences per optimizer step (summed over micro-batches). Default 8. */
  globalBatchSize: positiveInt.default(8),
  /** Sequences per forward/backward; globalBatchSize must be a multiple of it. Default 8. */
  microBatchSize: positiveInt.default(8),
  /** Peak learning rate (after warmup). Default 1e-4. */
  lr: z.number().positive().default(1e-4),
  /** Learning rate at the end of the cosine decay. Default 1e-5. */
  minLr: z.number().nonnegative().default(1e-5),
  /** Linear warmup steps. Default 10. */
  warmupSteps: z.number().int().nonnegative().default(10),
  /** AdamW decoupled weight decay. Default 0.01. */
  weightDecay: z.number().nonnegative().default(0.01),
  /** AdamW β1. Default 0.9. */
  beta1: z.number().min(0).lt(1).default(0.9),
  /** AdamW β2. Default 0.98. */
  beta2: z.number().min(0).lt(1).default(0.98),
  /** Global gradient-norm clip; 0 disables it. Default 1.0. */
  maxGradNorm: z.number().nonnegative().default(1.0),
  /** Validate every N steps (0 = only at the end). Default 20. */
  valEvery: z.number().int().nonnegative().default(20),
  /** Checkpoint every N steps (0 = only at the end). Default 50. */
  checkpointEvery: z.number().int().nonnegative().default(50),
  /** Keep the last K full checkpoints; older ones are pruned. Default 2. */
  keepCheckpoints: positiveInt.default(2),
  /** Start a fresh workflow history (continueAsNew) every N training chunks. Default 50. */
  continueAsNewEvery: positiveInt.default(50),
  /** Longest tokenized sequence; longer prompts are data errors. Default 512. */
  maxLength: positiveInt.default(512),
}).strict();

export const dataSchema = z.object({
  /** Training JSONL: a local path or an s3:// URI. */
  train: z.string().min(1),
  /** Validation JSONL; when absent, `validationFraction` of train is held out. */
  validation: z.string().min(1).optional(),
  /** Fraction of train held out for validation when no validation file is given. Default 0.1. */
  validationFraction: z.number().min(0).lt(1).default(0.1),
}).strict();

export const baseSchema = z.object({
  /** Hugging Face model folder (local path or s3:// URI) to start from. */
  model: z.string().min(1),
  /** Seed for data order and any sampling. Default 0. */
  seed: z.number().int().nonnegative().default(0),
  data: dataSchema,
  trainer: trainerSchema.default(trainerSchema.parse({})),
}).strict();

export type TrainerConfig = z.infer<typeof trainerSchema>;

/** Cross-field checks every recipe shares. */
export function checkTrainer(t: TrainerConfig): void {
  if (t.globalBatchSize % t.microBatchSize !== 0) {
    throw new ConfigError(`trainer.globalBatchSize (${t.globalBatchSize}) must be a multiple of trainer.microBatchSize (${t.microBatchSize})`);
  }
  if (t.minLr > t.lr) throw new ConfigError(`trainer.minLr (${t.minLr}) must not exceed trainer.lr (${t.lr})`);
  if (t.warmupSteps > t.maxSteps) throw new ConfigError(`trainer.warmupSteps (${t.warmupSteps}) must not exceed trainer.maxSteps (${t.maxSteps})`);
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
