/**
 * `npm run bench -- collectives`: all-reduce bandwidth between processes over the shared-memory
 * ProcessGroup, as a ratio of this machine's memcpy bandwidth measured in the same run.
 *
 * Bandwidth is the algorithm bandwidth, bytes reduced per second (NCCL's algbw): an all-reduce
 * of B bytes moves each byte into the segment, reads every rank's copy once for its reduction,
 * and copies the result back, so ~0.3–0.5 of one memcpy is what the design allows.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const help = `npm run bench -- collectives [--world 2] [--sizes 1,4,16,64,256]
  per size (MB): allreduce_gbps, memcpy_gbps and ratio = all-reduce bandwidth / memcpy bandwidth
  ratio_largest: the ratio at the largest size (target ≥ 0.4)
  The DP=2 step-time comparison lands with data-parallel training.`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function option(args: string[], flag: string, fallback: string): string {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const world = Number(option(args, '--world', '2'));
  const sizes = option(args, '--sizes', '1,4,16,64,256');
  const name = `aligner-bench-${randomBytes(6).toString('hex')}`;
  const outputs = await Promise.all(
    Array.from({ length: world }, (_, rank) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, 'bench/collectives-rank.ts'), name, String(rank), String(world), sizes], {
          env: { ...process.env, ALIGN_NUM_THREADS: '1' },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`collectives: rank ${rank} exited ${code}`))));
      }),
    ),
  );
  const rows = JSON.parse(outputs[0].trim().split('\n').pop() ?? '[]') as { mb: number; allreduce_gbps: number; memcpy_gbps: number; ratio: number }[];
  for (const r of rows) console.error(`  ${String(r.mb).padStart(4)} MB  all-reduce ${r.allreduce_gbps.toFixed(2)} GB/s  memcpy ${r.memcpy_gbps.toFixed(2)} GB/s  ratio ${r.ratio.toFixed(3)}`);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    bench: 'collectives',
    backend: 'shm',
    world,
    sizes: rows.map((r) => ({ mb: r.mb, allreduce_gbps: round(r.allreduce_gbps), memcpy_gbps: round(r.memcpy_gbps), ratio: round(r.ratio) })),
    ratio_largest: round(rows[rows.length - 1]?.ratio ?? NaN),
  };
}
