/**
 * GRPO, one iteration: sample a group per prompt → reward → log-probs (old policy, reference for
 * the k3 term) → group-normalised advantages → train, checkpoint.
 */
import type { RunInput, RunResult } from '../activities/types.js';
import { experienceLoop } from './online.js';
import type { LoopCarried } from './online.js';

export async function grpoWorkflow(input: RunInput & { loop?: LoopCarried | null }): Promise<RunResult> {
  return experienceLoop({ ...input, recipe: 'grpo' }, async (run) => {
    await run.stage('generate', 'actor');
    await run.stage('score', 'anywhere');
    await run.stage('logprobs', 'actor');
    await run.stage('advantages', 'control');
    return run.train();
  });
}
