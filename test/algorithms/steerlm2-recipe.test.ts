/**
 * The steerlm2 recipe on the tiny fixture: its config, micro-batches of groups ≡ one large batch,
 * and a short real run on data/demo/steerlm2.jsonl through step() that lowers the distance and
 * raises the policy's log-prob of each prompt's highest-w′ response relative to the others.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import { responseRows } from '../../algorithms/data/steerlm2.js';
import type { SteerLM2Example } from '../../algorithms/data/steerlm2.js';
import { ConfigError } from '../../algorithms/errors.js';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { steerlm2 } from '../../algorithms/recipes/steerlm2.js';
import type { SteerLM2Config } from '../../algorithms/recipes/steerlm2.js';
import type { StepContext } from '../../algorithms/recipes/types.js';
import { padRows } from '../../algorithms/train/batching.js';
import { arraySource, optimizerStep } from '../../algorithms/train/runner.js';
import { AdamW, noGrad, sum, tidy } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobs } from '../../models/logprobs.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'models/fixtures/tiny-llama');
const tok = Tokenizer.fromDir(fixture);
const DEMO = 'data/demo/steerlm2.jsonl';

const config = (trainer: Record<string, unknown> = {}) => parseRecipeConfig('steerlm2', {
  ...steerlm2.example, model: fixture, trainer: { ...(steerlm2.example.trainer as object), ...trainer },
}) as SteerLM2Config;

async function demo(): Promise<SteerLM2Example[]> {
  async function* lines() { yield* parseJsonl(readFileSync(path.join(root, DEMO), 'utf8'), DEMO); }
  const out: SteerLM2Example[] = [];
  for await (const p of steerlm2.prepare(lines(), { tok, config: config(), source: DEMO })) if ('example' in p) out.push(p.example);
  return out;
}

function context(model: CausalLM, c: SteerLM2Config): StepContext<SteerLM2Config> {
  const t = c.trainer;
  return { model, trainer: t, config: c, seed: 5, opt: new AdamW(model.parameters(), { lr: t.lr, beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay }) };
}

/** log Q_θ − log Q′ of every response, straight from the model (not through the recipe). */
function drift(model: CausalLM, groups: readonly SteerLM2Example[]): number[][] {
  return groups.map((e) => {
    const t = tidy(() => noGrad(() => sum(logprobs(model, padRows(responseRows(e))), 1))); // [n]
    const q = Array.from(t.toArraySync());
    t.dispose();
    return q.map((x, i) => x - e.logQPrime[i]);
  });
}

/** Per group: the drift of its highest-w′ response minus the mean drift of the others. */
const bestLead = (groups: readonly SteerLM2Example[], d: number[][]) => groups.map((e, g) => {
  const best = e.weights.indexOf(Math.max(...e.weights));
  const others = d[g].filter((_, i) => i !== best);
  return d[g][best] - others.reduce((a, b) => a + b, 0) / others.length;
});

describe('steerlm2 config', () => {
  it('defaults, and the cross-field check on data.overlong', () => {
    expect(config().steerlm2).toEqual({});
    expect(() => parseRecipeConfig('steerlm2', { model: 'm', data: { train: 'x', overlong: 'truncate' } }))
      .toThrow(new ConfigError('data.overlong: "truncate" would cut responses whose weights and log Q′ were computed whole; use "error" or "drop" for steerlm2'));
    expect(() => parseRecipeConfig('steerlm2', { model: 'm', data: { train: 'x' }, steerlm2: { numResponses: 1 } })).toThrow(/steerlm2\.numResponses/);
    expect(() => parseRecipeConfig('steerlm2', { model: 'm', data: { train: 'x' }, steerlm2: { n: 4 } })).toThrow(/unknown key\(s\) "n"/);
  });
});

describe('steerlm2 training', () => {
  it('micro-batches of 1 or 3 groups give the same step as one batch of 6', async () => {
    const data = (await demo()).slice(0, 12);
    const run = async (mbs: number) => {
      const model = await loadPretrained(fixture);
      const ctx = context(model, config({ globalBatchSize: 6, microBatchSize: mbs, lr: 1e-3 }));
      const m = [await optimizerStep(steerlm2, ctx, arraySource(data), null, 0), await optimizerStep(steerlm2, ctx, arraySource(data), null, 1)];
      model.dispose();
      return m;
    };
    const [big, small, mid] = [await run(6), await run(1), await run(3)];
    for (const other of [small, mid]) {
      other.forEach((s, k) => {
        for (const [a, b] of [[s.loss, big[k].loss], [s.gradNorm, big[k].gradNorm], [s.metrics.distance, big[k].metrics.distance]]) {
          expect(Math.abs(a - b)).toBeLessThan(1e-5 * Math.max(1, Math.abs(b)));
        }
      });
    }
  });

  it('a short run on the demo data lowers the distance and lifts each prompt\'s highest-w′ response over the others', async () => {
    const data = await demo();
    const model = await loadPretrained(fixture);
    const c = config(); // the example's trainer: 24 steps of 8 prompts
    const ctx = context(model, c);
    const before = await steerlm2.evaluate(ctx, arraySource(data), null);
    // The demo's log Q′ came from this model on these ids: the policy starts where the data says (4-decimal rounding, f32).
    expect(Math.abs(before.metrics.logRatio)).toBeLessThan(1e-3);
    const lead0 = bestLead(data, drift(model, data));
    lead0.forEach((x) => expect(Math.abs(x)).toBeLessThan(1e-3));
    const losses: number[] = [];
    for (let s = 0; s < c.trainer.maxSteps; s++) {
      const m = await optimizerStep(steerlm2, ctx, arraySource(data), null, s);
      expect(Number.isFinite(m.loss)).toBe(true);
      expect(m.tokens).toBeGreaterThan(0);
      losses.push(m.loss);
    }
    const after = await steerlm2.evaluate(ctx, arraySource(data), null);
    const lead = bestLead(data, drift(model, data));
    expect(after.metrics.distance).toBeLessThan(0.5 * before.metrics.distance);
    expect(lead.filter((x) => x > 0).length).toBeGreaterThanOrEqual(0.9 * data.length);
    // At the optimum b′ = w′ ∝ [e⁰, e⁻², e⁻², e⁻⁴]: the best response leads the others by (2 + 2 + 4)/3 = 8/3 nats.
    const meanLead = lead.reduce((a, b) => a + b, 0) / lead.length;
    console.log(`steerlm2: distance ${before.metrics.distance.toFixed(4)} → ${after.metrics.distance.toFixed(4)}; mean lead of the best response ${meanLead.toFixed(3)} nats`);
    expect(meanLead).toBeGreaterThan(1.5);
    expect(meanLead).toBeLessThan(4);
    expect(after.metrics.weightEntropy).toBeCloseTo(before.metrics.weightEntropy, 6); // a property of the data
    model.dispose();
  });
});
