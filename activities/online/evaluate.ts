/**
 * evaluatePolicy: the policy after k iterations on held-out prompts (the first rollout.evalPrompts
 * of the validation split), one sample each with seeds that do not depend on k, scored like the
 * rollouts; written to the ledger as `rollouts/<k>/eval/` and idempotent like every stage. The
 * same prompts and seeds at every evaluation make the numbers comparable across iterations.
 */
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import { rolloutSeed } from '../../algorithms/rollouts/grid.js';
import { mean } from '../../algorithms/rollouts/advantages.js';
import type { PromptExample } from '../../algorithms/data/prompts.js';
import { committedPart, partPrefix, readStage, stageRef, writePart } from '../../store/rollout-ledger.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import path from 'node:path';
import { openSplit } from '../data-source.js';
import { heartbeat, keepAlive } from '../heartbeat.js';
import type { ResidentJudges } from '../score.js';
import type { ResidentRuns } from '../train.js';
import { GENERATE_FIELDS, utf8Of } from './ledger-records.js';
import { sampleRollouts } from './generate.js';
import type { GeneratedRollout } from './ledger-records.js';
import { checkGeneratingWeights, loopFor } from './resident.js';
import { rewardsOf } from './reward.js';
import type { IterationRequest, StageResult } from './types.js';
import { writeEvaluation } from '../../store/metrics-ledger.js';
import { trackMetrics } from '../tracking/index.js';

export const EVAL_FIELDS = { ...GENERATE_FIELDS, reward: 'f64' } as const;
type EvalRecord = GeneratedRollout & { reward: number };

/** Seeds of held-out row r: the same at every evaluation of the run. */
const EVAL_STREAM = 0x7e5a1;


function metricsOf(records: readonly EvalRecord[]): Record<string, number> {
  const r = records.map((x) => x.reward), m = mean(r);
  return {
    evalReward: m, evalRewardStd: Math.sqrt(mean(r.map((x) => (x - m) ** 2))),
    evalResponseLength: mean(records.map((x) => x.responseIds.length)), evalEnded: mean(records.map((x) => x.ended)), evalPrompts: records.length,
  };
}

export function evaluatePolicy(store: RunStorePort, runs: ResidentRuns, judges: ResidentJudges, req: IterationRequest, writer: string): Promise<StageResult> {
  return keepAlive(async () => {
    const t0 = performance.now();
    const config = req.config as unknown as OnlineConfig;
    const prefix = partPrefix(req.runId, req.iteration, 'eval', 0);
    const done = await committedPart(store.store, prefix);
    if (done) {
      const ref = stageRef(req.runId, req.iteration, 'eval', [done]);
      const records = await readStage<EvalRecord>(store.store, ref, path.join(store.cacheDir, 'shards'));
      const metrics = metricsOf(records);
      await writeEvaluation(store.store, req.runId, { step: req.iteration, metrics }); // the activity may have died before it
      await trackMetrics(store.store, { runId: req.runId, step: req.iteration, kind: 'eval', rows: [{ type: 'evaluation', step: req.iteration, metrics }], config: req.config });
      return { ref, seconds: (performance.now() - t0) / 1000, written: 0, metrics };
    }
    runs.touch(req.runId);
    heartbeat({ stage: 'eval', phase: 'loading' }, { watch: false });
    const { loop } = await loopFor(store, runs, req);
    checkGeneratingWeights(loop, req.runId);
    const valid = await openSplit<PromptExample>(store, req.dataset.valid);
    let prompts: PromptExample[];
    try {
      prompts = await valid.getMany(Array.from({ length: Math.min(valid.count, config.rollout.evalPrompts) }, (_, i) => i));
    } finally {
      await valid.close();
    }
    const planned = prompts.map((_, row) => ({ row, prompt: row, sample: 0, seed: rolloutSeed(config.seed, EVAL_STREAM, row) }));
    const rows = await sampleRollouts(loop, planned, prompts, config.rollout);
    heartbeat({ stage: 'eval', phase: 'scoring' });
    const rewards = await rewardsOf(store, judges, config, rows.map((x) => ({
      record: JSON.parse(utf8Of(x.record)) as Record<string, unknown>, response: utf8Of(x.text), ended: x.ended === 1,
    })), (n) => heartbeat({ stage: 'eval', scored: n }));
    const records = rows.map((x, i) => ({ ...x, reward: rewards[i] }));
    const part = await writePart(store.store, prefix, EVAL_FIELDS, records, { writtenBy: writer, writtenAt: new Date().toISOString() });
    const seconds = (performance.now() - t0) / 1000;
    const metrics = metricsOf(records);
    const row = { type: 'evaluation' as const, step: req.iteration, metrics: { ...metrics, evalSeconds: seconds } };
    await writeEvaluation(store.store, req.runId, row);
    await trackMetrics(store.store, { runId: req.runId, step: req.iteration, kind: 'eval', rows: [row], config: req.config });
    return { ref: stageRef(req.runId, req.iteration, 'eval', [part]), seconds, written: 1, metrics };
  }, { hangSeconds: req.config.trainer.hangSeconds });
}
