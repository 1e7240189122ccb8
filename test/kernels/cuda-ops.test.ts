/**
 * Every op on CUDA against the CPU reference (bench/device-parity.ts: the op-suite cases, random
 * shapes, forward and backward, and the bf16 kernel variants), tagged `cuda` and skipped with the
 * reason where this machine has no usable GPU. bench/device.sh runs the same checks on the GPU
 * machine. Without a GPU this file still checks that the device entry point reports "no GPU"
 * cleanly and that the device scripts parse.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { bf16Parity, opParity, randomParity } from '../../bench/device-parity.js';
import { cudaAvailable } from '../../kernels/cuda-backend.js';
import { getBackend } from '../../kernels/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const status = cudaAvailable();
if (!status.ok) process.stdout.write(`[cuda-ops] skipping the GPU parity tests: ${status.reason.slice(0, 300)}\n`);

describe.skipIf(!status.ok)('cuda: every op matches the reference', () => {
  for (const [name, run] of [['op-suite cases', opParity], ['random shapes', randomParity], ['bf16 kernels', bf16Parity]] as const) {
    it(name, () => {
      const failed = run(getBackend('cuda')).filter((r) => !r.ok);
      expect(failed).toEqual([]);
    }, 300_000);
  }
});

describe('device scripts', () => {
  it('parse as bash', () => {
    for (const script of ['bench/device.sh', 'bench/bundle-device.sh', 'kernels/cuda/check.sh']) {
      const r = spawnSync('bash', ['-n', path.join(root, script)], { encoding: 'utf8' });
      expect(r.stderr, script).toBe('');
      expect(r.status, script).toBe(0);
    }
  });

  it.skipIf(status.ok)('device-main reports "no GPU" with a summary line last', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'bench/device-main.ts')], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { summary: boolean; ok: boolean; gpu: boolean; reason: string };
    expect(last).toMatchObject({ summary: true, ok: false, gpu: false });
    expect(last.reason).toMatch(/^no GPU: /);
  }, 60_000);
});
