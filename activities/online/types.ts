/** The messages between the online workflows and their stage activities: small JSON, tensors stay in the ledger. */
import type { Headline, LoopState, Metrics, StageName } from '../../algorithms/recipes/types.js';
import type { StageRef } from '../../store/rollout-ledger.js';
import type { CheckpointRef, DatasetRef, RecipeConfig, RecipeName } from '../types.js';

export type { LoopState, StageName, StageRef };

/** One iteration's request to a stage: where the weights are, and what earlier stages wrote. */
export interface IterationRequest {
  runId: string;
  recipe: RecipeName;
  config: RecipeConfig;
  dataset: DatasetRef;
  /** 0-based; the prompt cursor is the iteration itself. */
  iteration: number;
  /** The checkpoint after the previous iteration (null: the base model). */
  checkpoint: CheckpointRef | null;
  /** The loop state the iteration starts from; null before the first iteration (the recipe's initial state). */
  state: LoopState | null;
  /** Stages of this iteration already in the ledger. */
  refs: Partial<Record<StageName, StageRef>>;
  /** Set when the critic lives on a worker of its own (ppo.criticWorker = own): its checkpoint after the previous iteration. */
  critic?: { checkpoint: CheckpointRef | null } | null;
  /**
   * This call computes part `index` of `of` of its stage (config.parallel: generation shards
   * round-robin, log-prob and score micro-batches in contiguous blocks); absent: the whole stage.
   */
  split?: { index: number; of: number } | null;
  /** The slot this call's resident models live under on its worker: a rollout replica's (`<run>-rollout-<k>`); absent: the run's. */
  slot?: string | null;
  /**
   * trainOnRollouts under parallel.actor.dp: this call is rank `rank` of the actor's data-parallel
   * group (rank 0 on the actor's worker, rank k on rollout replica k), met at `rendezvous`.
   */
  dataParallel?: { rank: number; rendezvous: { name: string; world: number; timeoutMs: number } } | null;
  /**
   * trainOnRollouts only: what the iteration's earlier stages measured (their seconds, the
   * rewards and advantages), which the train stage writes to the metrics ledger with its own.
   */
  iterationMetrics?: Record<string, number>;
}

export interface CriticTrainResult {
  checkpoint: CheckpointRef;
  seconds: number;
  valueLoss: number;
  loadedFrom: 'resident' | 'checkpoint' | 'base';
}

export interface StageResult {
  ref: StageRef;
  seconds: number;
  /** Parts this call wrote (0: everything was already in the ledger). */
  written: number;
  metrics?: Metrics;
  state?: LoopState;
  /** The recipe's headline metric over this iteration's rollouts (the advantages stage). */
  headline?: Headline & { value: number };
}

export interface TrainResult {
  /** The committed checkpoint; null from the ranks after the first of a data-parallel actor (rank 0 commits). */
  checkpoint: CheckpointRef | null;
  seconds: number;
  /** Mean policy loss over the iteration's optimizer steps. */
  loss: number;
  /** Optimizer steps taken (skipped ones included: a mini-batch with nothing to train). */
  steps: number;
  tokens: number;
  gradNorm: number;
  lr: number;
  metrics: Metrics;
  loadedFrom: 'resident' | 'checkpoint' | 'base';
}

/** The policy on held-out prompts after `iteration` iterations (0: the initial policy). */
export interface Evaluation {
  iteration: number;
  metrics: Metrics;
}
