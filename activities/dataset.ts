/**
 * prepareDataset: stream the run's JSONL (a path or s3:// URI) line by line, turn records into
 * the recipe's examples (its tokenizer, chat template and data.overlong policy), split off
 * validation, and store both splits as packed binary token shards under the run (manifest last).
 * Memory stays bounded by one shard, whatever the dataset's size. Idempotent per run: a second
 * call returns the stored result. A bad record fails the run before training, naming the file
 * and line (a non-retryable DataError).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkMaxLength } from '../algorithms/config/common.js';
import { streamJsonl } from '../algorithms/data/jsonl.js';
import { DataError } from '../algorithms/errors.js';
import { getDataset } from '../algorithms/recipes/index.js';
import type { RecipeConfig } from '../algorithms/recipes/index.js';
import type { DatasetSpec } from '../algorithms/recipes/types.js';
import type { FieldSpec } from '../algorithms/recipes/fields.js';
import { Generator } from '../kernels/index.js';
import { Tokenizer } from '../models/tokenizer.js';
import { openStore, StoreError } from '../store/index.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { heartbeat, keepAlive } from './heartbeat.js';
import { openTokenDataset, readTokenManifest, TokenShardWriter } from '../store/token-shards.js';
import { contextWindowOf, readModelConfig } from './model-info.js';
import type { DatasetRef, PreparationReport, RecipeName, SplitRef } from './types.js';

export const datasetKeys = (runId: string) => ({
  train: `runs/${runId}/data/train`,
  valid: `runs/${runId}/data/valid`,
  ref: `runs/${runId}/data/dataset.json`,
});


/** The file as the user named it (for messages), and where it is on this machine. */
async function localInput(store: RunStorePort, uri: string): Promise<{ local: string; source: string }> {
  const local = await store.fetchInput(uri);
  return { local, source: path.basename(uri) === path.basename(local) ? uri : local };
}

interface Counting {
  report: PreparationReport;
}

/** The recipe's examples of one JSONL file, streamed; drops are counted in `c.report`. */
async function* examplesOf(recipe: DatasetSpec<RecipeConfig, unknown>, tok: Tokenizer, config: RecipeConfig, file: { local: string; source: string }, c: Counting): AsyncIterable<unknown> {
  async function* records() {
    for await (const rec of streamJsonl(file.local, file.source)) {
      c.report.records++;
      if (c.report.records % 1000 === 0) heartbeat({ phase: 'preparing', records: c.report.records });
      yield rec;
    }
  }
  let lastCut = -1;
  const onTruncate = (line: number) => {
    if (line !== lastCut) c.report.truncated++; // a pair cut on both sides counts once
    lastCut = line;
  };
  for await (const p of recipe.prepare(records(), { tok, config, source: file.source, onTruncate })) {
    if ('dropped' in p) {
      c.report.dropped++;
      if (c.report.droppedSamples.length < 5) c.report.droppedSamples.push(`${file.source} ${p.dropped}`);
      continue;
    }
    c.report.examples++;
    yield p.example;
  }
}

type Example = Record<string, unknown>;

interface SplitSink {
  add(e: Example): Promise<void>;
  finish(): Promise<SplitRef>;
}

/**
 * Where a split's examples go: a new shard writer, or, when an earlier attempt of this activity
 * already committed the split (its manifest exists), nowhere: the committed split is kept.
 */
async function splitSink(store: RunStorePort, prefix: string, fields: FieldSpec): Promise<SplitSink> {
  const ref = (records: number, tokens: number): SplitRef => ({ prefix, uri: store.store.uriOf(`${prefix}/`), count: records, tokens });
  const done = await readTokenManifest(store.store, prefix).catch((e: unknown) => {
    if (e instanceof StoreError && e.code === 'NotFound') return null;
    throw e;
  });
  if (done) return { add: async () => {}, finish: async () => ref(done.ref.records, done.ref.tokens) };
  const w = new TokenShardWriter(store.store, prefix, fields);
  return { add: (e) => w.add(e), finish: async () => ((m) => ref(m.records, m.tokens))(await w.finish()) };
}

async function writeSplit(store: RunStorePort, prefix: string, fields: FieldSpec, examples: AsyncIterable<unknown>): Promise<SplitRef> {
  const sink = await splitSink(store, prefix, fields);
  for await (const e of examples) await sink.add(e as Example);
  return sink.finish();
}

/** Whether a dataset ref is of the packed-shard kind (runs started before it carry JSON-array refs). */
export const isShardedDataset = (ref: unknown): ref is DatasetRef => typeof ref === 'object' && ref !== null && 'train' in ref && typeof (ref as DatasetRef).train?.prefix === 'string';

/** Indices of the held-out examples: a seeded shuffle of 0…n−1, its first round(n·fraction) (at least 1). */
function heldOut(n: number, fraction: number, seed: number): Uint8Array {
  const order = new Uint32Array(n).map((_, i) => i);
  const g = new Generator(seed ^ 0x5eed);
  for (let i = n - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const valid = new Uint8Array(n);
  const nValid = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
  for (let k = 0; k < nValid; k++) valid[order[k]] = 1;
  return valid;
}

export function prepareDataset(store: RunStorePort, args: { runId: string; recipe: RecipeName; config: RecipeConfig }): Promise<DatasetRef> {
  return keepAlive(() => prepareOnce(store, args));
}

async function prepareOnce(store: RunStorePort, args: { runId: string; recipe: RecipeName; config: RecipeConfig }): Promise<DatasetRef> {
  const keys = datasetKeys(args.runId);
  const existing = await store.getJson<DatasetRef>(keys.ref);
  if (existing && isShardedDataset(existing)) return existing; // a JSON-array dataset of old is prepared again, as shards
  const { config } = args;
  const recipe = getDataset(args.recipe);
  const modelDir = await store.fetchInput(config.model);
  checkMaxLength(config.trainer, contextWindowOf(await readModelConfig(modelDir)));
  const tok = Tokenizer.fromDir(modelDir);
  const train = await localInput(store, config.data.train);
  const c: Counting = { report: { records: 0, examples: 0, dropped: 0, droppedSamples: [], truncated: 0 } };
  let trainRef: SplitRef, validRef: SplitRef;
  if (config.data.validation) {
    trainRef = await writeSplit(store, keys.train, recipe.fields(config), examplesOf(recipe, tok, config, train, c));
    const valid = await localInput(store, config.data.validation);
    validRef = await writeSplit(store, keys.valid, recipe.fields(config), examplesOf(recipe, tok, config, valid, c));
  } else {
    // The split needs the number of examples: stage them in local shards, then deal them out.
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-prep-'));
    try {
      const staging = openStore(`file://${tmp}/store`);
      const w = new TokenShardWriter(staging, 'all', recipe.fields(config));
      for await (const e of examplesOf(recipe, tok, config, train, c)) await w.add(e as Example);
      const n = (await w.finish()).records;
      if (n < 2) throw new DataError(`${train.source}: ${n} example(s) cannot be split into train and validation; add data.validation`, train.source, null);
      const valid = heldOut(n, config.data.validationFraction, config.seed);
      const all = await openTokenDataset(staging, 'all', { cacheDir: path.join(tmp, 'cache') });
      const tw = await splitSink(store, keys.train, recipe.fields(config)), vw = await splitSink(store, keys.valid, recipe.fields(config));
      for (let i = 0; i < n; i++) await (valid[i] ? vw : tw).add(await all.get(i));
      await all.close();
      [trainRef, validRef] = [await tw.finish(), await vw.finish()];
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  if (trainRef.count === 0) {
    throw new DataError(`${train.source}: no example is left to train on (${c.report.dropped} of ${c.report.records} records dropped by data.overlong = ${config.data.overlong})`, train.source, null);
  }
  const min = recipe.minTrainExamples?.(config) ?? 1;
  if (trainRef.count < min) {
    throw new DataError(`${train.source}: ${trainRef.count} training examples are fewer than trainer.globalBatchSize (${min})`, train.source, null);
  }
  const ref: DatasetRef = { train: trainRef, valid: validRef, report: c.report };
  await store.putJson(keys.ref, ref); // written last: its presence means the data is complete
  return ref;
}
