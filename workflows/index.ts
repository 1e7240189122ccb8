/** Every workflow the workers register (the bundler's entry point). */
export { trainingWorkflow, pauseSignal, resumeSignal, stopSignal, progressQuery } from './training.js';
// Kept for runs started before every offline recipe ran as trainingWorkflow (their histories replay).
export { sftWorkflow } from './sft.js';
export { dpoWorkflow } from './dpo.js';
