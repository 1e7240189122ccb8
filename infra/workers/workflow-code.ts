/**
 * The workflow code a worker runs: the bundle named by ALIGN_WORKFLOW_BUNDLE when there is one
 * (the test setup bundles once for the whole suite instead of once per worker, seconds each),
 * else the sources, which the worker bundles itself at start.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));

export function workflowCode(): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  const bundle = process.env.ALIGN_WORKFLOW_BUNDLE;
  return bundle && existsSync(bundle) ? { workflowBundle: { codePath: bundle } } : { workflowsPath: WORKFLOWS_PATH };
}
