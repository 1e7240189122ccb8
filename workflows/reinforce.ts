/**
 * REINFORCE with the RLOO baseline, one iteration: sample 4 per prompt → reward → log-probs
 * (old policy, reference, for the KL penalty) → leave-one-out advantages → train, checkpoint.
 */
import type { RunInput, RunResult } from '../activities/types.js';
import { experienceLoop } from './online.js';
import type { LoopCarried } from './online.js';

export async function reinforceWorkflow(input: RunInput & { loop?: LoopCarried | null }): Promise<RunResult> {
  return experienceLoop({ ...input, recipe: 'reinforce' }, async (run) => {
    await run.stage('generate', 'actor');
    await run.stage('score', 'anywhere');
    await run.stage('logprobs', 'actor');
    await run.stage('advantages', 'control');
    return run.train();
  });
}
