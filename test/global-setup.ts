/**
 * vitest globalSetup of the integration tier: one headless Temporal dev server, one versitygw S3
 * endpoint and one bundle of the workflow code for the whole test run, on free loopback ports, with their state in a temp folder that is deleted at
 * the end. Tests find them through env (TEMPORAL_ADDRESS, ALIGN_S3_*) or `inject('stack')`.
 *
 * Missing binaries fail the run with the install command: tests never silently skip the real
 * servers. The servers are children of this process (not detached), so they die with it even
 * when vitest crashes before the teardown.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { stackEnv, startStack, stopStack, type StackInfo } from '../infra/dev-stack.js';
import { freePort } from '../infra/services.js';
import { WORKFLOWS_PATH } from '../infra/workers/workflow-code.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stateDir = mkdtempSync(join(tmpdir(), 'aligner-test-stack-'));
  const t0 = Date.now();
  let info: StackInfo;
  try {
    const [temporalPort, s3Port] = [await freePort(), await freePort()];
    info = await startStack({ stateDir, temporalPort, s3Port, s3: true, headless: true, detached: false, bucket: 'test' });
  } catch (e) {
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  // The workflow code, bundled once for every worker of the suite (infra/workers/workflow-code.ts).
  const bundle = join(stateDir, 'workflow-bundle.js');
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
  writeFileSync(bundle, code);
  // Workers are forked after global setup, so they inherit these.
  Object.assign(process.env, stackEnv(info), { ALIGN_WORKFLOW_BUNDLE: bundle });
  project.provide('stack', info);
  console.log(`test stack: Temporal ${info.temporal.address}, S3 ${info.s3!.endpoint} (up in ${Date.now() - t0} ms)`);
  return async () => {
    await stopStack(stateDir, 5_000);
    rmSync(stateDir, { recursive: true, force: true });
  };
}
