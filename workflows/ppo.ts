/**
 * RLHF with PPO, one iteration: sample → reward → log-probs (old policy, reference) → values
 * (critic) → advantages (GAE, whitened) → train actor and critic, checkpoint. The critic lives
 * with the actor, or on a worker of its own (ppo.criticWorker = own); the reward model is scored
 * on any compute worker that holds it.
 */
import type { RunInput, RunResult } from '../activities/types.js';
import { experienceLoop } from './online.js';
import type { LoopCarried } from './online.js';

export async function ppoWorkflow(input: RunInput & { loop?: LoopCarried | null }): Promise<RunResult> {
  // ppo.criticWorker = own: the critic computes values and trains on a worker of its own.
  const ownCritic = (input.config as { ppo?: { criticWorker?: string } }).ppo?.criticWorker === 'own';
  return experienceLoop({ ...input, recipe: 'ppo' }, async (run) => {
    await run.stage('generate', 'actor');
    await run.stage('score', 'anywhere');
    await run.stage('logprobs', 'actor');
    await run.stage('values', ownCritic ? 'critic' : 'actor');
    await run.stage('advantages', 'control');
    return run.train();
  }, { ownCritic });
}
