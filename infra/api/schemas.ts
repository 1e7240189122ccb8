/**
 * JSON schemas of the API's requests (fastify validates them before a handler runs). Bodies are
 * closed (`additionalProperties: false`): a misspelt field is an error, not silently ignored. The
 * run config itself is checked by the recipe's zod schema in the run service, whose message
 * names the failing field.
 */
import { RECIPE_NAMES } from '../../algorithms/recipes/index.js';

const runId = { type: 'string', minLength: 1, maxLength: 128, description: 'run id: letters, digits, ".", "_", "-"' } as const;

export const runParams = {
  type: 'object',
  required: ['id'],
  properties: { id: runId },
} as const;

export const recipeParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', enum: [...RECIPE_NAMES] } },
} as const;

export const startBody = {
  type: 'object',
  required: ['recipe', 'config'],
  additionalProperties: false,
  properties: {
    recipe: { type: 'string', enum: [...RECIPE_NAMES] },
    /** The recipe config, as the YAML/JSON file would hold it. */
    config: { type: 'object' },
    /** `key.path=value` overrides, applied to config before validation (as `align run --set`). */
    set: { type: 'array', items: { type: 'string', pattern: '^[^=]+=' } },
    runId,
  },
} as const;

export const rolloutsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { iteration: { type: 'integer', minimum: 0 } },
} as const;

export const metricsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 } },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 20 } },
} as const;

export const terminateBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 1000 } },
} as const;

export const resumeFailedBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { runId },
} as const;

export const exportBody = {
  type: 'object',
  required: ['outDir'],
  additionalProperties: false,
  properties: {
    /** Checkpoint step; default the newest valid checkpoint. */
    step: { type: 'integer', minimum: 0 },
    /** Absolute folder on the API server's machine; must not exist or be empty. */
    outDir: { type: 'string', minLength: 1 },
  },
} as const;

export interface StartBody {
  recipe: string;
  config: Record<string, unknown>;
  set?: string[];
  runId?: string;
}

/** Ajv's error for one field, as fastify passes it on. */
interface FieldError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * One message naming every failing field, e.g. `body.recipe must be one of: sft, dpo;
 * body.extra is not a known field`, and the field names alone.
 */
export function describeValidation(errors: readonly FieldError[], part: string): { message: string; fields: string[] } {
  const items = errors.map((e) => {
    const base = [part, ...e.instancePath.split('/').filter(Boolean)].join('.');
    if (e.keyword === 'required') return { field: `${base}.${String(e.params.missingProperty)}`, text: 'is required' };
    if (e.keyword === 'additionalProperties') return { field: `${base}.${String(e.params.additionalProperty)}`, text: 'is not a known field' };
    if (e.keyword === 'enum') return { field: base, text: `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}` };
    if (e.keyword === 'pattern' && base.startsWith(`${part}.set`)) return { field: base, text: 'must look like key.path=value' };
    return { field: base, text: e.message ?? `fails ${e.keyword}` };
  });
  return { message: items.map((i) => `${i.field} ${i.text}`).join('; '), fields: [...new Set(items.map((i) => i.field))] };
}
