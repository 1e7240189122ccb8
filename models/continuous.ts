/**
 * Continuous batching (Yu et al. 2022, Orca, §3.2, iteration-level scheduling): B slots decode
 * together; a slot whose row ends is refilled from the prompt queue at once, so the batch never
 * waits for its longest response and variable lengths cost nothing. Every row has its own seeded
 * generator (its samples depend on its own seed and history only) and its own stretch of a
 * shared fixed-capacity KV cache:
 *
 *   buffer positions  0 … start_b … cursor … capacity
 *   row b attends to  [start_b, cursor]  (its prompt, placed to end at the cursor, then its tokens)
 *
 * A new prompt is prefilled alone and its keys are copied into its slot's row ending at the
 * cursor; RoPE positions are per row (0 … L−1 for the prompt), so where a row sits in the buffer
 * does not matter. When the cursor reaches the capacity, every row's stretch is moved to the front
 * (by the smallest start), so the buffer needs only a quarter more than the longest prompt plus
 * maxNewTokens.
 * Results are returned in prompt order, as `generate` returns them.
 */
import { Generator, logSoftmax, noGrad, slice, tensor, tidy } from '../kernels/index.js';
import type { CausalLM, KVCache } from './causal-lm.js';
import { checkGenerate, generate } from './generate.js';
import type { GenerateOptions, GenerateResult } from './generate.js';
import { chooseToken } from './sampling.js';

export interface ContinuousOptions extends GenerateOptions {
  /** Rows decoded together (slots). */
  batchSize: number;
}

interface Slot {
  /** Index of the prompt it serves; −1 when idle. */
  prompt: number;
  /** RoPE position of its next input token. */
  pos: number;
  /** First buffer position it attends to. */
  start: number;
  /** The token to feed at the next step. */
  next: number;
}

/** Last-position log-probs [B, 1, V] of a forward, read to the host. */
async function lastLogprobs(model: CausalLM, ids: number[][], mask: number[][] | Float32Array, S: number, positions: number[][], cache: KVCache): Promise<Float32Array> {
  const B = ids.length, T = ids[0].length;
  const t = tidy(() => noGrad(() => {
    const m = mask instanceof Float32Array ? tensor(mask, [B, S]) : tensor(mask.flat(), [B, S]); // [B, S]
    const h = model.hidden(tensor(ids.flat(), [B, T], { dtype: 'i32' }), { mask: m, positions, cache }); // [B, T, C]
    return logSoftmax(model.logitsFrom(slice(h, 1, T - 1))); // [B, 1, V]
  }));
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

export async function generateContinuous(model: CausalLM, prompts: readonly (readonly number[])[], o: ContinuousOptions): Promise<GenerateResult> {
  checkGenerate(model, prompts, o);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new RangeError(`generateContinuous: batchSize must be a positive integer, got ${o.batchSize}`);
  // A fixed-capacity cache measures a sliding window from the end of its buffer: not for these models.
  if ('slidingWindow' in model.config && model.config.slidingWindow) return generate(model, prompts, o);
  const N = prompts.length, B = Math.min(o.batchSize, N), V = model.config.vocabSize, pad = o.padId ?? 0;
  const Lmax = Math.max(...prompts.map((p) => p.length));
  // A row spans at most Lmax + maxNewTokens positions; the slack past that is what each compaction
  // frees. Attention reads the whole buffer, so it is kept small: one wave (N ≤ B) needs no slack.
  const span = Lmax + o.maxNewTokens;
  const capacity = N <= B ? span : span + Math.max(8, Math.ceil(span / 4));
  const gens = prompts.map((_, i) => new Generator(o.seeds?.[i] ?? i));
  const eos = new Set(o.eosTokenIds ?? []);
  const out: GenerateResult = { tokens: prompts.map(() => []), logprobs: prompts.map(() => []), ended: prompts.map(() => false), finishReason: prompts.map(() => 'length') };
  const mask = new Float32Array(B * capacity); // row b, buffer position s → 1 where b attends
  const cache = model.newCache(capacity);
  let queued = B, cursor = Lmax;

  /** Takes token `token` for prompt p (log-prob from row `off` of logp); true when the row is done. */
  const take = (p: number, logp: Float32Array, off: number): { token: number; done: boolean } => {
    const token = chooseToken(logp, off, V, o, gens[p]);
    out.tokens[p].push(token);
    out.logprobs[p].push(logp[off + token]);
    if (eos.has(token)) [out.ended[p], out.finishReason[p]] = [true, 'eos'];
    else if (o.stopStrings?.length && o.stopStrings.some((s) => o.decode!(out.tokens[p]).includes(s))) [out.ended[p], out.finishReason[p]] = [true, 'stop'];
    return { token, done: out.ended[p] || out.tokens[p].length >= o.maxNewTokens };
  };

  try {
    // The first B prompts are prefilled together, left-padded to the longest prompt of the queue.
    const first = prompts.slice(0, B);
    const ids = first.map((p) => [...new Array<number>(Lmax - p.length).fill(pad), ...p]);
    const m0 = first.map((p) => [...new Array<number>(Lmax - p.length).fill(0), ...new Array<number>(p.length).fill(1)]);
    const pos0 = first.map((p) => [...new Array<number>(Lmax - p.length).fill(0), ...p.map((_, i) => i)]);
    const lp0 = await lastLogprobs(model, ids, m0, Lmax, pos0, cache);
    const slots: Slot[] = first.map((p, b) => {
      for (let s = Lmax - p.length; s < Lmax; s++) mask[b * capacity + s] = 1;
      const { token, done } = take(b, lp0, b * V);
      return { prompt: done ? -1 : b, pos: p.length, start: Lmax - p.length, next: token };
    });

    /** Fills idle slots from the queue: each new prompt is prefilled alone and placed to end at the cursor. */
    const refill = async (): Promise<void> => {
      for (let b = 0; b < B; b++) {
        while (slots[b].prompt < 0 && queued < N && prompts[queued].length <= cursor) {
          const p = queued++;
          const L = prompts[p].length;
          const one = model.newCache();
          try {
            const lp = await lastLogprobs(model, [[...prompts[p]]], [new Array<number>(L).fill(1)], L, [prompts[p].map((_, i) => i)], one);
            const { token, done } = take(p, lp, 0);
            if (done) continue;
            cache.insertRow(b, one, cursor);
            mask.fill(0, b * capacity, (b + 1) * capacity);
            mask.fill(1, b * capacity + cursor - L, b * capacity + cursor);
            slots[b] = { prompt: p, pos: L, start: cursor - L, next: token };
          } finally {
            one.dispose();
          }
        }
      }
    };
    await refill();

    while (slots.some((s) => s.prompt >= 0) || queued < N) {
      if (cursor + 1 > capacity) {
        // Move every row's stretch to the front: nothing before the smallest start is attended to.
        const shift = Math.min(...slots.filter((s) => s.prompt >= 0).map((s) => s.start), cursor);
        cache.shiftLeft(shift);
        for (let b = 0; b < B; b++) {
          mask.copyWithin(b * capacity, b * capacity + shift, (b + 1) * capacity);
          mask.fill(0, (b + 1) * capacity - shift, (b + 1) * capacity);
          slots[b].start -= shift;
        }
        cursor -= shift;
      }
      // One decode step for every slot; an idle one attends to its own new position only (its output is unused).
      for (let b = 0; b < B; b++) {
        if (slots[b].prompt < 0) mask.fill(0, b * capacity, b * capacity + cursor);
        mask[b * capacity + cursor] = 1;
      }
      const stepMask = new Float32Array(B * (cursor + 1));
      for (let b = 0; b < B; b++) stepMask.set(mask.subarray(b * capacity, b * capacity + cursor + 1), b * (cursor + 1));
      const lp = await lastLogprobs(model, slots.map((s) => [s.prompt < 0 ? pad : s.next]), stepMask, cursor + 1, slots.map((s) => [s.pos]), cache);
      cursor++;
      for (let b = 0; b < B; b++) {
        const s = slots[b];
        if (s.prompt < 0) continue;
        const { token, done } = take(s.prompt, lp, b * V);
        s.pos++;
        s.next = token;
        if (done) s.prompt = -1;
      }
      await refill();
    }
  } finally {
    cache.dispose();
  }
  return out;
}
