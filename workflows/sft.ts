/** SFT as a durable run: the shared training loop with recipe 'sft'. */
import type { RunInput, RunResult } from '../activities/types.js';
import { trainingWorkflow } from './training.js';

export async function sftWorkflow(input: Omit<RunInput, 'recipe'>): Promise<RunResult> {
  return trainingWorkflow({ ...input, recipe: 'sft' });
}
