/** Every workflow the workers register (the bundler's entry point). */
export { trainingWorkflow, pauseSignal, resumeSignal, stopSignal, progressQuery } from './training.js';
export { sftWorkflow } from './sft.js';
export { dpoWorkflow } from './dpo.js';
