/**
 * `align config <recipe>`: a complete, commented YAML config, generated from the recipe's zod
 * schema (every field with its description and default) and filled in with the recipe's example
 * values, so that the printed file runs as is on the tiny fixture models.
 */
import { z } from 'zod';
import YAML from 'yaml';
import type { Recipe } from './types.js';

interface JsonSchema {
  description?: string;
  default?: unknown;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
}

const scalar = (v: unknown): string => YAML.stringify(v, { lineWidth: 0 }).trim();

/** Wrap a description into `# ` comment lines of at most ~100 characters. */
function comment(text: string, indent: string): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length > 96) {
      out.push(`${indent}# ${line}`);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(`${indent}# ${line}`);
  return out;
}

function describeType(s: JsonSchema): string {
  if (s.enum) return `One of: ${s.enum.map((e) => String(e)).join(', ')}.`;
  return '';
}

function render(schema: JsonSchema, example: Record<string, unknown> | undefined, indent: string, lines: string[]): void {
  const required = new Set(schema.required ?? []);
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    const ex = example?.[key];
    const kind = describeType(prop);
    const doc = [prop.description ?? '', kind, prop.default !== undefined && typeof prop.default !== 'object' ? `Default ${scalar(prop.default)}.` : '']
      .filter(Boolean).join(' ');
    if (lines.length && indent === '') lines.push('');
    lines.push(...comment(doc, indent));
    if (prop.properties) {
      const inner: string[] = [];
      render(prop, (ex ?? prop.default) as Record<string, unknown> | undefined, `${indent}  `, inner);
      if (ex === undefined && prop.default === undefined && !required.has(key)) {
        // An optional section that is off unless given: shown commented out, with its defaults.
        lines.push(`${indent}# ${key}:`, ...inner.map((l) => (l.trim().startsWith('#') ? l : `${indent}#${l.slice(indent.length)}`)));
        continue;
      }
      // A section whose fields are all optional and unset is an empty mapping, not null.
      const empty = inner.every((l) => l.trim() === '' || l.trim().startsWith('#'));
      lines.push(`${indent}${key}:${empty ? ' {}' : ''}`, ...inner);
      continue;
    }
    const value = ex !== undefined ? ex : prop.default;
    if (value === undefined) lines.push(required.has(key) ? `${indent}${key}: <required>` : `${indent}# ${key}:`);
    else lines.push(`${indent}${key}: ${Array.isArray(value) ? JSON.stringify(value) : scalar(value)}`);
  }
}

export function exampleConfigYaml(recipe: Recipe<never>): string {
  const schema = z.toJSONSchema(recipe.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const lines = [
    ...comment(`align run ${recipe.name} — ${recipe.summary}.`, ''),
    ...comment(`Paper: ${recipe.paper}`, ''),
    ...(recipe.kind === 'offline' ? ['# Data formats:', ...recipe.dataFormats.flatMap((f) => comment(`  - ${f}`, ''))] : []),
    '# Paths are relative to the folder you run align from; every field below shows its default.',
  ];
  const body: string[] = [];
  render(schema, recipe.example, '', body);
  return `${[...lines, '', ...body].join('\n')}\n`;
}
