/**
 * The recipe table: one entry per recipe, complete and consistent; example configs that parse
 * and are up to date; and no file outside algorithms/recipes/ that switches on a recipe's name.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { exampleConfigYaml } from '../../algorithms/recipes/example-config.js';
import { getRecipe, parseRecipeConfig, RECIPE_NAMES, RECIPES } from '../../algorithms/recipes/index.js';
import { exampleFiles } from '../../examples/generate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (['node_modules', '.tools', '.git', '.state', 'build', '.scratch'].includes(name)) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|js)$/.test(name)) out.push(p);
  }
  return out;
}

describe('the recipe table', () => {
  it.each(RECIPE_NAMES)('%s is complete: name, summary, paper, roles, headline among its metrics, data formats and fields', (name) => {
    const r = getRecipe(name);
    expect(r.name).toBe(name);
    expect(r.summary.length).toBeGreaterThan(10);
    expect(r.paper).toMatch(/https:\/\//);
    expect(r.roles.policy).toBeDefined();
    const config = parseRecipeConfig(name, r.example);
    const h = r.headline(config);
    expect(['higher', 'lower']).toContain(h.better);
    expect(h.metric === 'loss' || h.metric in r.metrics).toBe(true);
    if (r.kind === 'offline') {
      expect(r.dataFormats.length).toBeGreaterThan(0);
      expect(Object.keys(r.fields(config)).length).toBeGreaterThan(0);
    }
  });

  it.each(RECIPE_NAMES)('align config %s prints YAML that parses back to the example with every default', (name) => {
    const r = getRecipe(name);
    const yaml = exampleConfigYaml(r as never);
    expect(yaml).toMatch(new RegExp(`^# align run ${name} `));
    const parsed = parseRecipeConfig(name, YAML.parse(yaml));
    expect(parsed).toEqual(parseRecipeConfig(name, r.example));
    // Every default is written out, not left implicit.
    for (const key of Object.keys(parsed.trainer)) expect(yaml).toMatch(new RegExp(`\\n  ${key}: `));
  });

  it('examples/*.yaml are the generated ones (npx tsx examples/generate.ts), one per recipe at least', () => {
    const files = exampleFiles();
    for (const name of RECIPE_NAMES) expect(files.has(name)).toBe(true);
    for (const [name, { recipe, yaml }] of files) {
      expect(readFileSync(path.join(root, 'examples', `${name}.yaml`), 'utf8')).toBe(yaml);
      expect(() => parseRecipeConfig(recipe, YAML.parse(yaml))).not.toThrow();
    }
  });

  it('an unknown recipe lists the known ones', () => {
    expect(() => getRecipe('spin')).toThrow(`unknown recipe "spin"; available: ${RECIPE_NAMES.join(', ')}`);
  });

  it('each online recipe\'s workflow runs exactly the stages its table entry declares, in order, then trains', () => {
    for (const name of RECIPE_NAMES) {
      const r = getRecipe(name);
      if (r.kind !== 'online') continue;
      const code = readFileSync(path.join(root, 'workflows', `${name}.ts`), 'utf8');
      const called = [...code.matchAll(/run\.stage\('(\w+)'/g)].map((m) => m[1]);
      expect([...called, ...(code.includes('run.train()') ? ['train'] : [])], name).toEqual(r.stages.map((st) => st.name));
      expect(code, name).toContain(`export async function ${name}Workflow(`);
    }
  });

  it('no file outside algorithms/recipes/ compares a recipe name', () => {
    const names = Object.keys(RECIPES).join('|');
    const literal = `['"\`](${names})['"\`]`;
    const compare = new RegExp(`(===|!==|==|!=)\\s*${literal}|${literal}\\s*(===|!==|==|!=)|case\\s+${literal}\\s*:|\\brecipe(Name)?\\s*(===|!==)`);
    const offenders: string[] = [];
    for (const file of sources(root)) {
      const rel = path.relative(root, file);
      // algorithms/losses/ switches on loss variants, one of which DPO's paper also calls 'dpo'.
      if (rel.startsWith('algorithms/recipes/') || rel.startsWith('algorithms/losses/') || rel === 'test/algorithms/recipes.test.ts') continue;
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        if (compare.test(line)) offenders.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
