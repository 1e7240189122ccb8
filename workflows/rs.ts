/**
 * Online rejection sampling, one iteration: sample N per prompt → reward → keep the best per
 * prompt (recorded in the ledger's advantages stage) → NLL on the kept samples, checkpoint.
 */
import type { RunInput, RunResult } from '../activities/types.js';
import { experienceLoop } from './online.js';
import type { LoopCarried } from './online.js';

export async function rsWorkflow(input: RunInput & { loop?: LoopCarried | null }): Promise<RunResult> {
  return experienceLoop({ ...input, recipe: 'rs' }, async (run) => {
    await run.stage('generate', 'actor');
    await run.stage('score', 'anywhere');
    await run.stage('advantages', 'control');
    return run.train();
  });
}
