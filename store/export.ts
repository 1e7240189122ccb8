/**
 * The one export path: a checkpoint → a complete Hugging Face model folder (config, weights,
 * every tokenizer file, no optimizer or trainer state), verified against the checkpoint's
 * manifest byte for byte. The workflow exports into the store (`runs/<id>/export/`, with its own
 * manifest written last) and `align export` into a local folder; both go through
 * `verifiedModelFiles`.
 */
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ArtifactStore } from './artifact-store.js';
import { readCheckpoint } from './checkpoints.js';
import type { CheckpointRef } from './checkpoints.js';
import { sha256Hex } from './hashing.js';

/** Tokenizer files a checkpoint carries from its base model, so that an export is complete. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'vocab.json', 'merges.txt', 'tokenizer.model', 'chat_template.jinja', 'generation_config.json',
] as const;

/** The files of a checkpoint that make a Hugging Face model folder. */
const MODEL_FILE = /^(config\.json|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json)$/;
/** LoRA runs also export their adapters in PEFT's layout, next to the merged model. */
const ADAPTER_FILES = ['adapter_model.safetensors', 'adapter_config.json'];
const isHfFile = (name: string) => MODEL_FILE.test(name) || (TOKENIZER_FILES as readonly string[]).includes(name) || ADAPTER_FILES.includes(name);

/** The checkpoint verifies, but it is not a model (no config.json or safetensors). */
export class ExportError extends Error {
  override name = 'ExportError';
}

export const EXPORT_MANIFEST = 'export.json';

/**
 * Downloads a checkpoint into `tmpDir` (every file checked against its manifest) and returns the
 * names of its Hugging Face files, sorted; throws ExportError when they do not make a model.
 */
export async function verifiedModelFiles(store: ArtifactStore, ref: CheckpointRef, tmpDir: string): Promise<string[]> {
  const manifest = await readCheckpoint(store, ref, tmpDir);
  const files = manifest.files.map((f) => f.name).filter(isHfFile).sort();
  if (!files.includes('config.json') || !files.some((f) => f.endsWith('.safetensors'))) {
    throw new ExportError(`checkpoint ${ref.uri} holds no Hugging Face model (config.json and *.safetensors); it has: ${manifest.files.map((f) => f.name).join(', ')}`);
  }
  return files;
}

/** Export into the store under `runs/<runId>/export/`; `export.json` (files, sha256, source checkpoint) is written last. */
export async function exportToStore(store: ArtifactStore, runId: string, ref: CheckpointRef, scratch: string): Promise<string> {
  const tmp = await mkdtemp(path.join(scratch, 'aligner-export-'));
  try {
    const files = await verifiedModelFiles(store, ref, tmp);
    const to = `runs/${runId}/export/`;
    const entries = [];
    for (const f of files) {
      const bytes = await readFile(path.join(tmp, f));
      await store.put(to + f, { file: path.join(tmp, f) });
      entries.push({ name: f, size: bytes.length, sha256: sha256Hex(bytes) });
    }
    await store.put(to + EXPORT_MANIFEST, Buffer.from(JSON.stringify({ format: 'aligner.export/1', runId, checkpoint: ref, files: entries }, null, 2)));
    return store.uriOf(to);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Export into a new local folder: the files are verified in a temporary sibling and moved into
 * `outDir` only then, so a failed download never leaves a folder that looks like a model.
 */
export async function exportToFolder(store: ArtifactStore, ref: CheckpointRef, outDir: string): Promise<string[]> {
  const out = path.resolve(outDir);
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = await mkdtemp(path.join(path.dirname(out), `.${path.basename(out)}.partial-`));
  try {
    const files = await verifiedModelFiles(store, ref, tmp);
    await mkdir(out, { recursive: true });
    for (const f of files) await rename(path.join(tmp, f), path.join(out, f));
    return files;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
