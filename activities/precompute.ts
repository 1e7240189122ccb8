/**
 * precompute: the inputs a recipe computes once from a fixed model before training (DPO and KTO
 * reference log-probs, KD teacher top-K logits), one record per example, stored as packed token
 * shards in parts of PART_SIZE examples. Each part is durable on its own (its manifest is written
 * last), so a crashed or re-placed precompute resumes at the first missing part; the index of
 * all parts is written after the last one. Returns null for recipes that precompute nothing.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { getOfflineRecipe } from '../algorithms/recipes/index.js';
import { Tokenizer } from '../models/tokenizer.js';
import type { RecipeConfig } from '../algorithms/recipes/index.js';
import type { TrainableModel } from '../algorithms/recipes/model.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { heartbeat, keepAlive } from './heartbeat.js';
import { TokenShardWriter } from '../store/token-shards.js';
import { openSplit } from './data-source.js';
import { readModelConfig } from './model-info.js';
import { loadModel } from './training-state.js';
import type { DatasetRef, PrecomputedIndex, PrecomputedRef, RecipeName, SplitRef } from './types.js';

/** Examples per durable part. */
export const PART_SIZE = 256;


/** Text whose ids tell two tokenizers apart (letters, digits, punctuation, Unicode, spacing, a chat tag). */
const PROBE = 'The quick brown fox, 1234 émigrés; 漢字 <|im_end|>\n\tdone.';

/** Whether the folders' tokenizers agree on PROBE; null when the second has none. */
function sameTokenizer(studentDir: string, otherDir: string): boolean | null {
  if (!existsSync(path.join(otherDir, 'tokenizer.json'))) return null;
  const [a, b] = [Tokenizer.fromDir(studentDir), Tokenizer.fromDir(otherDir)];
  const ids = (t: Tokenizer) => t.encode(PROBE, { addSpecialTokens: false }).join(',');
  return ids(a) === ids(b);
}

const partKey = (runId: string, name: string, split: string, k: number) => `runs/${runId}/precompute/${name}/${split}/part-${String(k).padStart(5, '0')}`;

export function precompute(store: RunStorePort, args: { runId: string; recipe: RecipeName; config: RecipeConfig; dataset: DatasetRef }): Promise<PrecomputedRef | null> {
  return keepAlive(() => computeOnce(store, args));
}

async function computeOnce(store: RunStorePort, args: { runId: string; recipe: RecipeName; config: RecipeConfig; dataset: DatasetRef }): Promise<PrecomputedRef | null> {
  const recipe = getOfflineRecipe(args.recipe);
  const spec = recipe.precompute;
  if (!spec || !(spec.needed?.(args.config) ?? true)) return null;
  const indexKey = `runs/${args.runId}/precompute/${spec.name}/index.json`;
  const small = (index: PrecomputedIndex): PrecomputedRef => ({
    name: index.name, indexKey, trainCount: index.train.reduce((n, p) => n + p.count, 0), validCount: index.valid.reduce((n, p) => n + p.count, 0),
  });
  const done = await store.getJson<PrecomputedIndex>(indexKey);
  if (done) return small(done);
  const { config } = args;
  let model: TrainableModel | null = null;
  const modelFor = async () => {
    if (model) return model;
    heartbeat({ phase: 'loading', role: spec.role });
    const dir = await store.fetchInput(spec.modelUri(config));
    model = await loadModel(dir, { kind: 'causal-lm' }, config.seed);
    const studentDir = await store.fetchInput(config.model);
    const student = await readModelConfig(studentDir);
    spec.check?.(model, { vocabSize: student.vocabSize, sameTokenizer: sameTokenizer(studentDir, dir) }, config);
    return model;
  };
  const out: PrecomputedIndex = { name: spec.name, train: [], valid: [] };
  try {
    for (const split of ['train', 'valid'] as const) {
      const source = await openSplit(store, args.dataset[split]);
      try {
        for (let k = 0, from = 0; from < source.count; k++, from += PART_SIZE) {
          const prefix = partKey(args.runId, spec.name, split, k);
          let part = await store.getJson<{ records: number; tokens?: number }>(`${prefix}/manifest.json`);
          if (!part) {
            const idx = Array.from({ length: Math.min(PART_SIZE, source.count - from) }, (_, i) => from + i);
            const records = await spec.compute(await modelFor(), await source.getMany(idx), config, () => heartbeat({ phase: 'precomputing', name: spec.name, split, part: k }));
            const w = new TokenShardWriter(store.store, prefix, spec.fields);
            for (const r of records) await w.add(r as Record<string, unknown>);
            part = await w.finish();
          }
          out[split].push({ prefix, uri: store.store.uriOf(`${prefix}/`), count: part.records, tokens: part.tokens ?? 0 } satisfies SplitRef);
          heartbeat({ phase: 'precomputing', name: spec.name, split, done: Math.min(source.count, from + PART_SIZE), of: source.count });
        }
      } finally {
        await source.close();
      }
    }
  } finally {
    (model as TrainableModel | null)?.dispose();
  }
  await store.putJson(indexKey, out); // written last: its presence means every part is there
  return small(out);
}
