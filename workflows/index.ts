/** Every workflow the workers register (the bundler's entry point). */
export { trainingWorkflow, pauseSignal, resumeSignal, stopSignal, progressQuery } from './training.js';
// Kept for runs started before every offline recipe ran as trainingWorkflow (their histories replay).
export { sftWorkflow } from './sft.js';
export { dpoWorkflow } from './dpo.js';
// The online recipes: one experience-loop workflow each (workflows/online.ts runs the loop).
export { ppoWorkflow } from './ppo.js';
export { reinforceWorkflow } from './reinforce.js';
export { grpoWorkflow } from './grpo.js';
export { rsWorkflow } from './rs.js';
// Pipelines: a parent per pipeline run, its stages child workflows (recipe runs and data stages).
export { pipelineWorkflow, pipelineQuery } from './pipeline.js';
export { dataStageWorkflow } from './data-stage.js';
