/** DPO as a durable run: the shared training loop with recipe 'dpo' (reference log-probs are computed once, in the first chunk's worker). */
import type { RunInput, RunResult } from '../activities/types.js';
import { trainingWorkflow } from './training.js';

export async function dpoWorkflow(input: Omit<RunInput, 'recipe'>): Promise<RunResult> {
  return trainingWorkflow({ ...input, recipe: 'dpo' });
}
