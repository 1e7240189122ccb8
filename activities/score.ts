/**
 * scoreResponses: a reward model's scores for prompt/response pairs, the judge that the online
 * recipes (PPO, REINFORCE, rejection sampling) call. The classifier stays resident on the worker,
 * keyed by its folder, so a loop pays its load once. Each response is scored at its last token,
 * tokenized exactly as the reward model's training pairs were (algorithms/data/pair.ts: chat
 * prompts through the template; plain text by TRL's rule, with BOS and EOS, or NeMo-Aligner's,
 * verbatim).
 */
import { tokenizePromptResponse } from '../algorithms/data/pair.js';
import { noGrad, tensor, tidy } from '../kernels/index.js';
import type { SequenceScoreModel } from '../models/heads.js';
import { loadSequenceClassifier, requireClassifier } from '../models/sequence-classification.js';
import { Tokenizer } from '../models/tokenizer.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { heartbeat } from './heartbeat.js';
import type { ScoreRequest, ScoreResult } from './types.js';

export interface ResidentJudge {
  model: SequenceScoreModel;
  tok: Tokenizer;
  labelNames: string[];
}

/** Reward models held by this worker, by folder URI. */
export class ResidentJudges {
  private readonly judges = new Map<string, Promise<ResidentJudge>>();

  get(store: RunStorePort, uri: string): Promise<ResidentJudge> {
    let j = this.judges.get(uri);
    if (!j) {
      j = (async () => {
        const dir = await store.fetchInput(uri);
        await requireClassifier(dir);
        const { model, labelNames } = await loadSequenceClassifier(dir, {});
        return { model, tok: Tokenizer.fromDir(dir), labelNames };
      })();
      j.catch(() => this.judges.delete(uri));
      this.judges.set(uri, j);
    }
    return j;
  }

  async dispose(): Promise<void> {
    for (const j of this.judges.values()) (await j.catch(() => null))?.model.dispose();
    this.judges.clear();
  }
}

export async function scoreResponses(store: RunStorePort, judges: ResidentJudges, req: ScoreRequest): Promise<ScoreResult> {
  const judge = await judges.get(store, req.model);
  const rows = req.samples.map((s) => {
    const t = tokenizePromptResponse(judge.tok, s.prompt, s.response, { style: req.style ?? 'trl', allowEmpty: true });
    return [...t.prompt, ...t.response];
  });
  return { scores: await scoreIds(judge, rows, req.microBatch ?? 8), labelNames: judge.labelNames };
}

/** Scores of token sequences (each read at its last token), in micro-batches; heartbeats as it goes. */
export async function scoreIds(judge: ResidentJudge, rows: readonly number[][], mb = 8): Promise<number[][]> {
  const scores: number[][] = [];
  for (let i = 0; i < rows.length; i += mb) {
    const batch = rows.slice(i, i + mb);
    const T = Math.max(...batch.map((r) => r.length));
    const ids = batch.flatMap((r) => [...r, ...new Array<number>(T - r.length).fill(0)]);
    const mask = batch.map((r) => Array.from({ length: T }, (_, t) => (t < r.length ? 1 : 0)));
    const out = tidy(() => noGrad(() => judge.model.forward(tensor(ids, [batch.length, T], { dtype: 'i32' }), mask))); // [b, N]
    const v = await out.data();
    out.dispose();
    const N = out.shape[1];
    for (let b = 0; b < batch.length; b++) scores.push(Array.from(v.subarray(b * N, (b + 1) * N)));
    heartbeat({ scored: scores.length, of: rows.length });
  }
  return scores;
}
