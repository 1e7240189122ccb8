/**
 * Batched generation with a KV cache: prompts of different lengths are left-padded (masked, with
 * per-row positions), the prompt is prefilled once, then one token per step is decoded for every
 * row. Each row samples with its own seeded generator, so a row's output does not depend on
 * which other prompts share its batch. Returns the new tokens, their log-probabilities under the
 * model (temperature 1, before top-k/top-p), and whether each row ended (EOS or a stop string).
 */
import { Generator, logSoftmax, noGrad, slice, tensor, tidy } from '../kernels/index.js';
import { AlignerError } from '../kernels/errors.js';
import type { CausalLM } from './causal-lm.js';
import { chooseToken, validateSampling } from './sampling.js';
import type { SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** One seed per prompt; default 0, 1, 2, …. */
  seeds?: readonly number[];
  /** Tokens that end a row (kept in its output). */
  eosTokenIds?: readonly number[];
  /** Strings that end a row once its decoded output contains one (needs `decode`). */
  stopStrings?: readonly string[];
  decode?: (ids: number[]) => string;
  /** Id placed in padding positions (never attended to). Default 0. */
  padId?: number;
  /** Use the KV cache (default). false recomputes the whole sequence each step (for tests). */
  useCache?: boolean;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateResult {
  tokens: number[][];
  logprobs: number[][];
  ended: boolean[];
  finishReason: FinishReason[];
}

export function checkGenerate(model: CausalLM, prompts: readonly (readonly number[])[], o: GenerateOptions): void {
  validateSampling(o);
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) throw new RangeError(`generate: maxNewTokens must be a positive integer, got ${o.maxNewTokens}`);
  if (o.stopStrings?.length && !o.decode) throw new AlignerError('generate: stopStrings need a decode function (pass the tokenizer\'s decode)');
  if (o.seeds && o.seeds.length !== prompts.length) throw new RangeError(`generate: ${o.seeds.length} seeds for ${prompts.length} prompts`);
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new RangeError(`generate: prompt ${i} is empty`);
    if (p.length + o.maxNewTokens > model.contextWindow) {
      throw new RangeError(`generate: prompt ${i} has ${p.length} tokens; with maxNewTokens ${o.maxNewTokens} that exceeds the context window of ${model.contextWindow}`);
    }
  });
}

export async function generate(model: CausalLM, prompts: readonly (readonly number[])[], o: GenerateOptions): Promise<GenerateResult> {
  checkGenerate(model, prompts, o);
  const B = prompts.length, V = model.config.vocabSize, pad = o.padId ?? 0;
  const Lmax = Math.max(...prompts.map((p) => p.length));
  const gens = prompts.map((_, i) => new Generator(o.seeds?.[i] ?? i));
  const seqs = prompts.map((p) => [...new Array<number>(Lmax - p.length).fill(pad), ...p]); // left-padded
  const mask = prompts.map((p) => [...new Array<number>(Lmax - p.length).fill(0), ...new Array<number>(p.length).fill(1)]);
  const out: GenerateResult = { tokens: prompts.map(() => []), logprobs: prompts.map(() => []), ended: prompts.map(() => false), finishReason: prompts.map(() => 'length') };
  const useCache = o.useCache ?? true;
  const cache = useCache ? model.newCache(Lmax + o.maxNewTokens) : null;
  const eos = new Set(o.eosTokenIds ?? []);
  try {
    for (let step = 0; step < o.maxNewTokens && out.ended.includes(false); step++) {
      const first = step === 0 || !useCache;
      const S = seqs[0].length, T = first ? S : 1;
      // Positions count real tokens only, so a left-padded row starts at 0 like an unpadded one.
      const positions = mask.map((row) => {
        const pos: number[] = [];
        let p = 0;
        for (const m of row) pos.push(m ? p++ : 0);
        return pos.slice(S - T);
      });
      const lastLogits = tidy(() => noGrad(() => {
        const ids = tensor(seqs.flatMap((r) => r.slice(S - T)), [B, T], { dtype: 'i32' }); // [B, T]
        const h = model.hidden(ids, { mask: tensor(mask.flat(), [B, S]), positions, cache }); // [B, T, C]
        // Log-softmax on the device: the host then needs no pass over the vocabulary for greedy
        // decoding, and the chosen token's log-prob is read off directly.
        return logSoftmax(model.logitsFrom(slice(h, 1, T - 1))); // [B, 1, V]
      }));
      const logp = await lastLogits.data();
      lastLogits.dispose();
      for (let b = 0; b < B; b++) {
        let token = pad;
        if (!out.ended[b]) {
          token = chooseToken(logp, b * V, V, o, gens[b]); // softmax is shift-invariant: log-probs act as logits
          out.tokens[b].push(token);
          out.logprobs[b].push(logp[b * V + token]);
          if (eos.has(token)) [out.ended[b], out.finishReason[b]] = [true, 'eos'];
          else if (o.stopStrings?.length && o.stopStrings.some((s) => o.decode!(out.tokens[b]).includes(s))) [out.ended[b], out.finishReason[b]] = [true, 'stop'];
        }
        seqs[b].push(token);
        mask[b].push(1);
      }
    }
  } finally {
    cache?.dispose();
  }
  return out;
}
