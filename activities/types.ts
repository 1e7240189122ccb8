/**
 * The messages between workflows and activities. Everything here is small JSON (well under
 * Temporal's 2 MB payload limit): tensors and datasets travel as store URIs.
 */
import type { Headline, Metrics, RecipeConfig, RecipeName } from '../algorithms/recipes/index.js';
import type { StepMetrics } from '../algorithms/train/runner.js';
import type { CheckpointRef } from '../store/checkpoints.js';

export type { CheckpointRef, RecipeConfig, RecipeName };

export interface RunInput {
  runId: string;
  recipe: RecipeName;
  /** Parsed and validated config (the CLI and API parse before starting anything). */
  config: RecipeConfig;
  /** Start from this checkpoint (resume-failed creates a new run with lineage). */
  resumeFrom?: CheckpointRef | null;
  /** The run this one resumes, for lineage. */
  parentRunId?: string | null;
  /** With resumeFrom: the checkpoint of the resumed run's own-worker critic at the same step (PPO, ppo.criticWorker = own). */
  resumeCritic?: CheckpointRef | null;
  /** Carried across continueAsNew. */
  carried?: CarriedState | null;
  /** How long a silent compute worker is trusted before the run is re-placed. Default 10. */
  heartbeatSeconds?: number;
  /** Task queues (isolated fleets, tests); default align-control / align-cpu. */
  queues?: Queues | null;
  /** How long the run waits out a store outage (with backoff) before it fails. Default 300. */
  storeRetrySeconds?: number;
  /** A gang that has placed some ranks waits this long for the next before it gives them all back and tries again later. Default 30. */
  gangPlaceSeconds?: number;
}

export interface Queues {
  control: string;
  compute: string;
}

/** One split of a prepared dataset: packed token shards under `prefix` (manifest last). */
export interface SplitRef {
  /** Store key of the shard folder. */
  prefix: string;
  uri: string;
  count: number;
  tokens: number;
}

/** What preparation did with the records, for the run's report. */
export interface PreparationReport {
  records: number;
  examples: number;
  /** Records skipped by data.overlong = drop (or truncate with nothing left to train on). */
  dropped: number;
  /** The first few dropped records, "file line N: why". */
  droppedSamples: string[];
  /** Records cut to trainer.maxLength by data.overlong = truncate. */
  truncated: number;
}

export interface DatasetRef {
  train: SplitRef;
  valid: SplitRef;
  report: PreparationReport;
}

/** Inputs precomputed once (reference log-probs, teacher top-K): what the workflow carries (small, whatever the dataset's size). */
export interface PrecomputedRef {
  name: string;
  /** Store key of the index of parts (PrecomputedIndex). */
  indexKey: string;
  trainCount: number;
  validCount: number;
}

/** The parts of a precompute, per split, in example order (each part a token dataset of its own). */
export interface PrecomputedIndex {
  name: string;
  train: SplitRef[];
  valid: SplitRef[];
}

/** One optimizer step, as the runner reports it (algorithms/train/runner.ts). */
export type StepSummary = StepMetrics;

export interface Validation {
  step: number;
  loss: number;
  metrics: Metrics;
  /** The recipe's headline metric and its value (the loss when the headline is the loss). */
  headline: Headline & { value: number };
}

/** A run's use of its devices, by phase (workflows/usage.ts). */
export interface Usage {
  wallSeconds: number;
  deviceSeconds: number;
  tokens: number;
  phases: Record<string, { wallSeconds: number; deviceSeconds: number }>;
}

/** config.cost: the price of a device-hour (a GPU, or a CPU worker's compute slot). */
export interface CostConfig {
  perDeviceHour?: number;
  currency: string;
}

/** Something that happened to a run that its status should show: the watchdog found it hung, its worker was preempted. */
export interface RunEvent {
  type: 'hang' | 'preempted' | 'gang-restart';
  /** The step the run moves on from (its last checkpoint). */
  step: number;
  /** The worker queue it happened on. */
  worker: string;
  detail: string;
}

export interface CarriedState {
  events?: RunEvent[];
  usage?: Usage;
  /** Gang attempts so far (config.parallel): each gets a fresh rendezvous. */
  gangAttempts?: number;
  /** The budget has paused the run once (resume goes on past it). */
  budgetPaused?: boolean;
  step: number;
  dataset: DatasetRef;
  precomputed?: PrecomputedRef | null;
  lastCheckpoint: CheckpointRef | null;
  history: StepSummary[];
  validations: Validation[];
  tokensSeen: number;
  trainSeconds: number;
}

export interface ChunkRequest {
  runId: string;
  recipe: RecipeName;
  config: RecipeConfig;
  dataset: DatasetRef;
  precomputed?: PrecomputedRef | null;
  /** Start here; the worker's resident model must be at this step, else it loads `checkpoint`. */
  fromStep: number;
  toStep: number;
  checkpoint: CheckpointRef | null;
  /** Validate after the last step of the chunk. */
  validate: boolean;
  /** Validate before the first step too (the "before" of the run's metrics). */
  validateBefore?: boolean;
}

export interface ChunkResult {
  step: number;
  steps: StepSummary[];
  checkpoint: CheckpointRef;
  validation: Validation | null;
  /** The validation before the chunk's first step, when asked for. */
  validationBefore?: Validation | null;
  /** Where the weights came from at the start of the chunk. */
  loadedFrom: 'resident' | 'checkpoint' | 'base';
  seconds: number;
  /** The worker is being taken away: the chunk stopped before toStep, committed at `step`, and handed the run back. */
  preempted?: boolean;
  /** Seconds of the chunk's phases: loading, validating, training, checkpointing. */
  phases?: Record<string, number>;
}

export type RunStatus = 'preparing' | 'precomputing' | 'training' | 'waiting' | 'paused' | 'stopping' | 'exporting' | 'completed' | 'stopped';

export interface Progress {
  runId: string;
  recipe: RecipeName;
  status: RunStatus;
  step: number;
  maxSteps: number;
  lastLoss: number | null;
  lastValidation: Validation | null;
  /** The first validation (before training when the run validates at its start). */
  firstValidation?: Validation | null;
  lastCheckpoint: CheckpointRef | null;
  /** Training tokens per second over the run so far (wall time of training chunks). */
  tokensPerSecond: number | null;
  /** Steps of recent history, newest last. */
  recent: StepSummary[];
  parentRunId: string | null;
  exportUri: string | null;
  report?: PreparationReport | null;
  /** What the run waits for (a store outage), when it waits; null otherwise. */
  waiting?: string | null;
  /** Hangs and preemptions, oldest first (the latest 50). */
  events?: RunEvent[];
  /** Wall seconds, device-seconds and tokens by phase, and their cost at config.cost.perDeviceHour. */
  usage?: Usage;
  cost?: { amount: number; currency: string; perDeviceHour: number } | null;
  /** Why the run is paused, when it paused itself (its budget). */
  pauseReason?: string | null;
  /** Online runs: the stage of the current iteration (generate, score, …, train, eval); null between iterations. */
  stage?: string | null;
  /** Online runs: the policy on held-out prompts, by iteration (0 = before training). */
  evaluations?: { iteration: number; metrics: Metrics }[];
}

export interface RunResult {
  runId: string;
  status: 'completed' | 'stopped';
  step: number;
  lastCheckpoint: CheckpointRef | null;
  exportUri: string | null;
  validations: Validation[];
  /** Online runs: the policy on held-out prompts, by iteration (0 = before training). */
  evaluations?: { iteration: number; metrics: Metrics }[];
}

/** scoreResponses: a reward model's scores for prompt/response pairs (the online recipes' judge). */
export interface ScoreRequest {
  /** A reward-model folder (an export of an rm run, or any HF *ForSequenceClassification folder). */
  model: string;
  /** A prompt is plain text or chat messages ({role, content}), as in the training data. */
  samples: { prompt: string | { role: 'system' | 'user' | 'assistant'; content: string }[]; response: string }[];
  /** How plain-text samples are tokenized: 'trl' (BOS + EOS, the default) or 'nemo' (verbatim), as the RM's training data was. */
  style?: 'trl' | 'nemo';
  /** Micro-batch of the forward passes. Default 8. */
  microBatch?: number;
}

export interface ScoreResult {
  /** scores[i] has one value per label (1 for a Bradley-Terry model). */
  scores: number[][];
  labelNames: string[];
}
