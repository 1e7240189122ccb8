/**
 * Pipeline configs are checked before anything starts, naming the file, line or field: a
 * constitution without principles, SteerLM records or targets whose attributes are not the
 * attribute model's, a stage value its recipe refuses, a key the pipeline sets itself, unknown
 * keys and missing files. No server is involved.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { getPipeline, PIPELINE_NAMES } from '../../algorithms/pipelines/index.js';
import { ConfigError } from '../../algorithms/errors.js';
import { preparePipelineConfig } from '../../infra/pipelines.js';
import { AllowedRoots } from '../../infra/allowed-roots.js';
import { checkRecipe, UsageError } from '../../infra/runs.js';
import { pipelineExampleFiles } from '../../examples/generate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-pipeline-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const file = path.join(tmp, name);
  writeFileSync(file, text);
  return file;
};

/** A model folder that only names its attributes (what the checks read). */
function attributeModel(names: string[]): string {
  const dir = path.join(tmp, `am-${names.join('-')}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForSequenceClassification'], id2label: Object.fromEntries(names.map((n, i) => [String(i), n])) }));
  return dir;
}

const fails = (name: string, raw: Record<string, unknown>): string => {
  try {
    preparePipelineConfig(name, raw, [], root);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('the config was accepted');
};

describe('pipeline configs are checked before anything starts', () => {
  it('every pipeline\'s example plans every stage (the steerlm2 and cai examples name models to replace)', () => {
    // What the examples' notes say to set (their models cannot ship).
    const set: Record<string, () => Record<string, unknown>> = {
      steerlm2: () => ({ attributeModel: attributeModel(['shouting', 'length']) }),
      cai: () => ({ model: path.join(root, 'models/fixtures/tiny-llama') }),
    };
    for (const name of PIPELINE_NAMES) {
      const ex = { ...getPipeline(name).example, ...set[name]?.() };
      expect(() => preparePipelineConfig(name, ex, [], root), name).not.toThrow();
    }
  });

  it('examples/pipelines/*.yaml are the generated ones (npx tsx examples/generate.ts), one per pipeline', () => {
    for (const [name, yaml] of pipelineExampleFiles()) expect(readFileSync(path.join(root, 'examples/pipelines', `${name}.yaml`), 'utf8'), name).toBe(yaml);
    expect([...pipelineExampleFiles().keys()]).toEqual(PIPELINE_NAMES);
  });

  it('a constitution without principles', () => {
    const file = write('empty-constitution.json', JSON.stringify({ principles: [] }));
    const msg = fails('cai', { ...getPipeline('cai').example, model: path.join(root, 'models/fixtures/tiny-llama'), constitution: file });
    expect(msg).toContain(file);
    expect(msg).toMatch(/principle/);
  });

  it('SteerLM 2.0 targets that name attributes the attribute model does not predict (file and line)', () => {
    const prompts = write('targets.jsonl', [
      JSON.stringify({ prompt: 'Hi', label: 'shouting:4,length:2' }),
      JSON.stringify({ prompt: 'Hello', label: 'quality:4,toxicity:0' }),
    ].join('\n'));
    const msg = fails('steerlm2', { ...getPipeline('steerlm2').example, attributeModel: attributeModel(['shouting', 'length']), prompts });
    expect(msg).toBe(`${prompts}:2: attribute label "quality:4,toxicity:0" names "quality", "toxicity", which the attribute model does not predict (it has: shouting, length)`);
    const unlabelled = write('unlabelled.jsonl', JSON.stringify({ prompt: 'Hi' }));
    expect(fails('steerlm2', { ...getPipeline('steerlm2').example, attributeModel: attributeModel(['shouting', 'length']), prompts: unlabelled })).toMatch(/unlabelled\.jsonl:1: missing key "label"/);
  });

  it('models, data and constitutions in a store are left to the stages that load them (nothing local is read)', () => {
    const remote = { attributeModel: 's3://models/am/export/', prompts: 's3://data/targets.jsonl' };
    const c = preparePipelineConfig('steerlm2', { ...getPipeline('steerlm2').example, ...remote }, [], root);
    const sample = getPipeline('steerlm2').stage('sample-1', c, {}, { model: c.model as string, round: 1 });
    // The sampler reads the attribute names from the loaded model, not from the config.
    expect(sample.kind === 'data' && sample.args).toMatchObject(remote);
    expect(sample.kind === 'data' && 'attributes' in sample.args).toBe(false);
    expect(() => preparePipelineConfig('cai', { ...getPipeline('cai').example, model: 's3://models/assistant/', constitution: 's3://data/constitution.json' }, [], root)).not.toThrow();
    expect(() => preparePipelineConfig('steerlm', { ...getPipeline('steerlm').example, data: 's3://data/steerlm.jsonl', attributeModel: 's3://models/am/' }, [], root)).not.toThrow();
  });

  it('SteerLM records labelled with other attributes, and an attribute model of other attributes', () => {
    const data = write('labelled.jsonl', JSON.stringify({ conversations: [{ from: 'User', value: 'Hi' }, { from: 'Assistant', value: 'Hello', label: 'humor:3' }] }));
    expect(fails('steerlm', { ...getPipeline('steerlm').example, data })).toMatch(/labelled\.jsonl:1: attribute label "humor:3" names "humor"/);
    const am = attributeModel(['quality', 'toxicity']);
    expect(fails('steerlm', { ...getPipeline('steerlm').example, attributeModel: am })).toMatch(/predicts \[quality, toxicity\], but attributes is \[shouting, length\]/);
  });

  it('a stage value its recipe refuses, a key the pipeline sets, an unknown key, a missing file', () => {
    const ex = getPipeline('rlhf').example as Record<string, Record<string, unknown>>;
    expect(fails('rlhf', { ...ex, rm: { ...ex.rm, trainer: { lr: -1 } } })).toMatch(/pipeline stage "rm" \(rm\): .*trainer\.lr/s);
    expect(fails('rlhf', { ...ex, sft: { ...ex.sft, model: 'models/fixtures/tiny-llama' } })).toBe('sft.model is set by the pipeline (from the stage before); remove it from sft');
    expect(fails('rlhf', { ...ex, sftt: {} })).toMatch(/unknown key\(s\) "sftt"/);
    expect(fails('spin', { ...getPipeline('spin').example, data: 'no/such.jsonl' })).toMatch(/data: no such file or folder: .*no\/such\.jsonl/);
  });

  it('with allowed roots, a path outside them is refused as outside before it is looked at, missing or not', () => {
    const roots = new AllowedRoots([root]);
    const guard = (f: string, v: string) => roots.check(f, v);
    const ex = getPipeline('spin').example;
    expect(() => preparePipelineConfig('spin', ex, [], root, guard)).not.toThrow();
    for (const data of ['/etc/passwd', '/no/such/secret.jsonl', `${root}/../no-such-${process.pid}.jsonl`]) {
      expect(() => preparePipelineConfig('spin', { ...ex, data }, [], root, guard)).toThrow(/^data: .* is outside the folders and stores this server may read and write/);
    }
  });

  it('a pipeline named where a recipe is expected says which command runs it', () => {
    expect(() => checkRecipe('spin')).toThrow(UsageError);
    expect(() => checkRecipe('spin')).toThrow('"spin" is a pipeline, not a recipe: align pipeline run spin --config …');
  });
});
