/**
 * The score stage's rewards: a reward model (resident on the worker that scores, like
 * scoreResponses' judges) or a programmatic reward function loaded from its module once per
 * worker. A function that throws or returns a non-finite number fails the batch with a DataError
 * naming the prompt's line, the response and what the function did.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promptOf, promptText } from '../../algorithms/data/prompts.js';
import { DataError } from '../../algorithms/errors.js';
import { ConfigError } from '../../algorithms/errors.js';
import { parseRewardSpec } from '../../algorithms/rollouts/reward.js';
import type { RewardFunction } from '../../algorithms/rollouts/reward.js';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { scoreResponses } from '../score.js';
import type { ResidentJudges } from '../score.js';
import type { ScoreRequest } from '../types.js';

const loaded = new Map<string, Promise<RewardFunction>>();

/** The function a `reward.function` spec names; ConfigError when the module or export is missing. */
export function loadRewardFunction(spec: string): Promise<RewardFunction> {
  let f = loaded.get(spec);
  if (!f) {
    f = (async () => {
      const { path: file, name } = parseRewardSpec(spec);
      let mod: Record<string, unknown>;
      try {
        mod = (await import(pathToFileURL(path.resolve(file)).href)) as Record<string, unknown>;
      } catch (err) {
        throw new ConfigError(`reward.function: cannot load ${file} (${(err as Error).message})`);
      }
      const fn = name ? mod[name] : mod.reward ?? mod.default;
      if (typeof fn !== 'function') {
        throw new ConfigError(`reward.function: ${file} has no function export ${name ? `"${name}"` : '"reward" or default'} (it exports: ${Object.keys(mod).join(', ') || 'nothing'})`);
      }
      return fn as RewardFunction;
    })();
    f.catch(() => loaded.delete(spec));
    loaded.set(spec, f);
  }
  return f;
}

export interface RewardInput {
  record: Record<string, unknown>;
  response: string;
  ended: boolean;
}

/** Rewards of the rollouts, in order. */
export async function rewardsOf(store: RunStorePort, judges: ResidentJudges, config: OnlineConfig, rows: readonly RewardInput[], beat: (done: number) => void): Promise<number[]> {
  const where = (r: RewardInput) => `the prompt at ${config.data.train} line ${String(r.record.line)} (${JSON.stringify(promptText(r.record).slice(0, 60))}) with the response ${JSON.stringify(r.response.slice(0, 60))}`;
  if (config.reward.function) {
    const spec = config.reward.function;
    const fn = await loadRewardFunction(spec);
    const out: number[] = [];
    for (const r of rows) {
      let v: unknown;
      try {
        v = await fn({ prompt: promptText(r.record), response: r.response, record: r.record, ended: r.ended });
      } catch (err) {
        throw new DataError(`reward.function ${spec} threw on ${where(r)}: ${(err as Error).message}`, config.data.train, Number(r.record.line));
      }
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new DataError(`reward.function ${spec} returned ${String(v)} (not a finite number) on ${where(r)}`, config.data.train, Number(r.record.line));
      }
      out.push(v);
      if (out.length % 64 === 0) beat(out.length);
    }
    return out;
  }
  const samples = rows.map((r) => {
    const p = promptOf(r.record);
    return { sample: { prompt: p.prompt, response: r.response }, style: p.verbatim ? 'nemo' as const : config.rollout.style };
  });
  const out = new Array<number>(rows.length);
  for (const style of ['trl', 'nemo'] as const) {
    const idx = samples.map((s, i) => (s.style === style ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) continue;
    const { scores } = await scoreResponses(store, judges, { model: config.reward.model!, samples: idx.map((i) => samples[i].sample) as ScoreRequest['samples'], style, microBatch: config.rollout.microBatch });
    idx.forEach((i, k) => {
      const v = scores[k][0];
      if (!Number.isFinite(v)) throw new DataError(`reward model ${config.reward.model} gave ${v} on ${where(rows[i])}`, config.data.train, Number(rows[i].record.line));
      out[i] = v;
    });
    beat(idx.length);
  }
  return out;
}
