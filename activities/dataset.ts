/**
 * prepareDataset: read the run's JSONL (a path or s3:// URI), tokenize it with the model's
 * tokenizer and chat template, split off validation, and store both as JSON under the run.
 * Idempotent per run: a second call returns the stored result. Any bad record fails the run
 * before training with the file and line (a non-retryable DataError).
 */
import path from 'node:path';
import type { DpoConfig, SftConfig } from '../algorithms/config/recipes.js';
import { readJsonl } from '../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../algorithms/data/jsonl.js';
import { tokenizePreference } from '../algorithms/data/preference.js';
import { tokenizeSft } from '../algorithms/data/sft.js';
import { DataError } from '../algorithms/errors.js';
import { Generator } from '../kernels/index.js';
import { Tokenizer } from '../models/tokenizer.js';
import type { RunStorePort } from '../store/run-store-port.js';
import type { DatasetRef, RecipeConfig, RecipeName } from './types.js';

export const datasetKeys = (runId: string) => ({
  train: `runs/${runId}/data/train.json`,
  valid: `runs/${runId}/data/valid.json`,
  ref: `runs/${runId}/data/dataset.json`,
});

function tokenizeAll(recipe: RecipeName, config: RecipeConfig, tok: Tokenizer, records: JsonlRecord[], source: string): unknown[] {
  const maxLength = config.trainer.maxLength;
  return recipe === 'sft'
    ? records.map((r) => tokenizeSft(tok, r, source, { maxLength, template: (config as SftConfig).sft.chatTemplate }))
    : records.map((r) => tokenizePreference(tok, r, source, maxLength));
}

/** Deterministic held-out split by seed: a shuffled fraction of the records. */
function split<T>(items: T[], fraction: number, seed: number): { train: T[]; valid: T[] } {
  const order = items.map((_, i) => i);
  const g = new Generator(seed ^ 0x5eed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nValid = Math.min(items.length - 1, Math.max(1, Math.round(items.length * fraction)));
  const valid = new Set(order.slice(0, nValid));
  return { train: items.filter((_, i) => !valid.has(i)), valid: items.filter((_, i) => valid.has(i)) };
}

export async function prepareDataset(store: RunStorePort, args: { runId: string; recipe: RecipeName; config: RecipeConfig }): Promise<DatasetRef> {
  const keys = datasetKeys(args.runId);
  const existing = await store.getJson<DatasetRef>(keys.ref);
  if (existing) return existing;
  const { config, recipe } = args;
  const tok = Tokenizer.fromDir(await store.fetchInput(config.model));
  const trainPath = await store.fetchInput(config.data.train);
  const trainSource = path.basename(config.data.train) === path.basename(trainPath) ? config.data.train : trainPath;
  const trainRecords = await readJsonl(trainPath).catch((e: unknown) => {
    if (e instanceof DataError) throw new DataError(e.message.replace(trainPath, trainSource), trainSource, e.line);
    throw e;
  });
  let train = tokenizeAll(recipe, config, tok, trainRecords, trainSource);
  let valid: unknown[];
  if (config.data.validation) {
    valid = tokenizeAll(recipe, config, tok, await readJsonl(await store.fetchInput(config.data.validation)), config.data.validation);
  } else {
    if (train.length < 2) throw new DataError(`${trainSource}: ${train.length} record(s) cannot be split into train and validation; add data.validation`, trainSource, null);
    ({ train, valid } = split(train, config.data.validationFraction, config.seed));
  }
  if (recipe === 'dpo' && (config as DpoConfig).trainer.globalBatchSize > train.length) {
    throw new DataError(`${trainSource}: ${train.length} training pairs are fewer than trainer.globalBatchSize (${config.trainer.globalBatchSize})`, trainSource, null);
  }
  const ref: DatasetRef = {
    trainKey: keys.train,
    validKey: keys.valid,
    trainUri: await store.putJson(keys.train, train),
    validUri: await store.putJson(keys.valid, valid),
    trainCount: train.length,
    validCount: valid.length,
  };
  await store.putJson(keys.ref, ref); // written last: its presence means the data is complete
  return ref;
}
