/** Where the CUDA test files find nvcc: $NVCC, the PATH, or the tools venv made by kernels/cuda/check.sh's install command. */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function findNvcc(): string | null {
  if (process.env.NVCC && existsSync(process.env.NVCC)) return process.env.NVCC;
  const onPath = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  const venvLib = path.join(root, '.tools/cuda-venv/lib');
  for (const py of existsSync(venvLib) ? readdirSync(venvLib) : []) {
    const nvcc = path.join(venvLib, py, 'site-packages/nvidia/cu13/bin/nvcc');
    if (existsSync(nvcc)) return nvcc;
  }
  return null;
}
