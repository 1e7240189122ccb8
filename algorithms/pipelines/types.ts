/**
 * What a pipeline is: a fixed sequence of stages, each either a run of a recipe (a child workflow
 * of the recipe table's kind) or a data stage (a durable, sharded task that writes a JSONL the
 * next stage reads: annotation, sampling and scoring, critique and revision, judging). As a recipe
 * is one entry of RECIPES, a pipeline is one entry of PIPELINES; the workflow that runs it
 * (workflows/pipeline.ts) knows no pipeline by name.
 *
 * A stage's inputs are earlier stages' outputs (a model export, a data file), resolved when the
 * stage is planned, so a resumed pipeline plans its remaining stages from the records of the
 * completed ones, and a scheduled round starts from the previous round's output model.
 */
import type { z } from 'zod';
import type { RecipeName } from '../recipes/index.js';

/** What a completed stage left behind, recorded by the parent (small: URIs and numbers). */
export interface StageOutput {
  /** The stage's trained model: a Hugging Face folder URI (a run's export). */
  model?: string;
  /** The stage's data: a JSONL URI another stage reads. */
  data?: string;
  /** Records written (data stages). */
  records?: number;
  /** The stage's measured effect, as before/after numbers (headline metric, rewards, preferences). */
  metrics: Record<string, number>;
  /** One line for `align pipeline status`. */
  summary: string;
}

export type StageOutputs = Readonly<Record<string, StageOutput>>;

/** The task names a data stage can run (activities/pipeline/tasks.ts implements each). */
export type DataTaskName = 'preference-pairs' | 'spin-pairs' | 'annotate' | 'steer-eval' | 'steerlm2-sample' | 'critique-revise' | 'judge-pairs';

export type StageSpec =
  | {
      kind: 'run';
      recipe: RecipeName;
      /** The recipe's raw config (parsed and validated by the recipe's schema when planned). */
      config: Record<string, unknown>;
    }
  | {
      kind: 'data';
      task: DataTaskName;
      /** The task's arguments: URIs, numbers, strings (small JSON). */
      args: Record<string, unknown>;
      /** Durable units: a crash redoes only the unfinished shard. 0: the task counts them from its input when planned. */
      shards: number;
    };

/** Where a pipeline starts: its config's model, or (a scheduled round) the previous round's output. */
export interface PipelineStart {
  /** The policy the first stage trains (or samples from). */
  model: string;
  /** 1 for the first round of a schedule (or an unscheduled run), n for its n-th. */
  round: number;
}

export interface PipelineDef<C = Record<string, unknown>> {
  name: string;
  /** One line for `align pipeline --help`. */
  summary: string;
  /** The strict config: the start model, the stages' sections, rounds. */
  schema: z.ZodType<C>;
  /** A minimal config on the tiny fixture models (examples/pipelines/). */
  example: Record<string, unknown>;
  /** What to change in the example before it runs (models it cannot ship), as comment lines. */
  exampleNotes?: readonly string[];
  /** The stage names, in order (rounds expanded: `sample-1`, `dpo-1`, `sample-2`, …). */
  stages(config: C): string[];
  /** The stage's spec from the config and the outputs of the stages before it. */
  stage(name: string, config: C, outputs: StageOutputs, start: PipelineStart): StageSpec;
  /** The pipeline's result: the model the next scheduled round starts from. */
  output(config: C, outputs: StageOutputs): { model: string };
  /**
   * Checks what the config's files hold before anything starts (a constitution without
   * principles, attribute labels the attribute model does not predict): ConfigError naming the file.
   */
  checkInputs?(config: C): void;
}
