/**
 * The messages between workflows and activities. Everything here is small JSON (well under
 * Temporal's 2 MB payload limit): tensors and datasets travel as store URIs.
 */
import type { DpoConfig, SftConfig } from '../algorithms/config/recipes.js';
import type { PreferenceMetrics } from '../algorithms/losses/dpo.js';

export type RecipeName = 'sft' | 'dpo';
export type RecipeConfig = SftConfig | DpoConfig;

import type { CheckpointRef } from '../store/checkpoints.js';

export type { CheckpointRef };

export interface RunInput {
  runId: string;
  recipe: RecipeName;
  /** Parsed and validated config (the CLI and API parse before starting anything). */
  config: RecipeConfig;
  /** Start from this checkpoint (resume-failed creates a new run with lineage). */
  resumeFrom?: CheckpointRef | null;
  /** The run this one resumes, for lineage. */
  parentRunId?: string | null;
  /** Carried across continueAsNew. */
  carried?: CarriedState | null;
  /** How long a silent compute worker is trusted before the run is re-placed. Default 60. */
  heartbeatSeconds?: number;
  /** Task queues (isolated fleets, tests); default align-control / align-cpu. */
  queues?: Queues | null;
}

export interface Queues {
  control: string;
  compute: string;
}

export interface DatasetRef {
  /** Store keys of the tokenized training and validation examples (JSON). */
  trainKey: string;
  validKey: string;
  /** The same, as URIs for people. */
  trainUri: string;
  validUri: string;
  trainCount: number;
  validCount: number;
}

export interface StepSummary {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  preference?: PreferenceMetrics;
}

export interface Validation {
  step: number;
  loss: number;
  preference?: PreferenceMetrics;
}

export interface CarriedState {
  step: number;
  dataset: DatasetRef;
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
  /** Start here; the worker's resident model must be at this step, else it loads `checkpoint`. */
  fromStep: number;
  toStep: number;
  checkpoint: CheckpointRef | null;
  /** Validate after the last step of the chunk. */
  validate: boolean;
}

export interface ChunkResult {
  step: number;
  steps: StepSummary[];
  checkpoint: CheckpointRef;
  validation: Validation | null;
  /** Where the weights came from at the start of the chunk. */
  loadedFrom: 'resident' | 'checkpoint' | 'base';
  seconds: number;
}

export type RunStatus = 'preparing' | 'training' | 'paused' | 'stopping' | 'exporting' | 'completed' | 'stopped';

export interface Progress {
  runId: string;
  recipe: RecipeName;
  status: RunStatus;
  step: number;
  maxSteps: number;
  lastLoss: number | null;
  lastValidation: Validation | null;
  lastCheckpoint: CheckpointRef | null;
  /** Training tokens per second over the run so far (wall time of training chunks). */
  tokensPerSecond: number | null;
  /** Steps of recent history, newest last. */
  recent: StepSummary[];
  parentRunId: string | null;
  exportUri: string | null;
}

export interface RunResult {
  runId: string;
  status: 'completed' | 'stopped';
  step: number;
  lastCheckpoint: CheckpointRef | null;
  exportUri: string | null;
  validations: Validation[];
}
