/**
 * Writes examples/<recipe>.yaml for every recipe of the table (the output of `align config
 * <recipe>`), plus variants that show a second mode of a recipe, and examples/pipelines/<name>.yaml
 * for every pipeline (`align pipeline config <name>`). Run from the repository root:
 * npx tsx examples/generate.ts. A test checks that the files are what this script writes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exampleConfigYaml } from '../algorithms/recipes/example-config.js';
import { getRecipe, RECIPE_NAMES } from '../algorithms/recipes/index.js';
import type { Recipe } from '../algorithms/recipes/index.js';
import { getPipeline, PIPELINE_NAMES } from '../algorithms/pipelines/index.js';
import { pipelineExampleYaml } from '../algorithms/pipelines/example-config.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Second modes worth a file of their own: name → recipe and example overrides. */
export const VARIANTS: Record<string, { recipe: string; example: Record<string, unknown> }> = {
  'rm-regression': {
    recipe: 'rm',
    example: {
      model: 'models/fixtures/tiny-llama',
      data: { train: 'data/demo/rm-regression.jsonl', validationFraction: 0.25 },
      rm: { type: 'regression', numAttributes: 2, attributes: ['shouting', 'length'] },
      trainer: { maxSteps: 30, globalBatchSize: 8, microBatchSize: 8, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 64 },
    },
  },
  'dpo-ipo': {
    recipe: 'dpo',
    example: { ...getRecipe('dpo').example, dpo: { beta: 0.2, loss: 'ipo', averageLogProbs: true }, trainer: { ...(getRecipe('dpo').example.trainer as object), lr: 1e-3, minLr: 1e-4 } },
  },
};

/** Every example file: name → (recipe, YAML text). */
export function exampleFiles(): Map<string, { recipe: string; yaml: string }> {
  const out = new Map<string, { recipe: string; yaml: string }>();
  for (const name of RECIPE_NAMES) out.set(name, { recipe: name, yaml: exampleConfigYaml(getRecipe(name) as never) });
  for (const [name, v] of Object.entries(VARIANTS)) {
    const recipe = { ...getRecipe(v.recipe), example: v.example } as Recipe<never>;
    out.set(name, { recipe: v.recipe, yaml: exampleConfigYaml(recipe) });
  }
  return out;
}

/** Every pipeline example: name → YAML text (examples/pipelines/<name>.yaml). */
export function pipelineExampleFiles(): Map<string, string> {
  return new Map(PIPELINE_NAMES.map((name) => [name, pipelineExampleYaml(getPipeline(name))]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [name, { yaml }] of exampleFiles()) writeFileSync(path.join(here, `${name}.yaml`), yaml);
  mkdirSync(path.join(here, 'pipelines'), { recursive: true });
  for (const [name, yaml] of pipelineExampleFiles()) writeFileSync(path.join(here, 'pipelines', `${name}.yaml`), yaml);
}
