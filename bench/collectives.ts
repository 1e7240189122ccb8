/**
 * `npm run bench -- collectives`: all-reduce bandwidth between processes over the shared-memory
 * ProcessGroup, as a ratio of this machine's memcpy bandwidth measured in the same run; and the
 * data-parallel training step at DP=2 (one thread per rank) against DP=1 with two threads, the
 * same global batch, the same cores.
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
  --dp-steps N  timed data-parallel steps (default 6; 0 skips): dp2_step_ms (2 ranks × 1 thread),
                dp1_step_ms (1 process × 2 threads), dp_speedup = dp1 / dp2 (train-cpu model, batch 8×128)`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function option(args: string[], flag: string, fallback: string): string {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
}

/** Starts `world` ranks of a bench script with `threads` compute threads each; resolves to their stdouts. */
function gang(script: string, world: number, threads: number, extra: string[]): Promise<string[]> {
  const name = `aligner-bench-${randomBytes(6).toString('hex')}`;
  return Promise.all(
    Array.from({ length: world }, (_, rank) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, script), name, String(rank), String(world), ...extra], {
          env: { ...process.env, ALIGN_NUM_THREADS: String(threads) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script}: rank ${rank} exited ${code}`))));
      }),
    ),
  );
}

const lastJson = <T>(out: string): T => JSON.parse(out.trim().split('\n').pop() ?? 'null') as T;

async function dpStep(steps: number): Promise<Record<string, number>> {
  const [dp1] = await gang('bench/dp-step-rank.ts', 1, 2, [String(steps)]);
  const [dp2] = await gang('bench/dp-step-rank.ts', 2, 1, [String(steps)]);
  const one = lastJson<{ stepMs: number }>(dp1), two = lastJson<{ stepMs: number; buckets: number }>(dp2);
  console.error(`  data parallel: DP=1 × 2 threads ${one.stepMs.toFixed(0)} ms/step, DP=2 × 1 thread ${two.stepMs.toFixed(0)} ms/step (${two.buckets} buckets)`);
  return { dp1_step_ms: Math.round(one.stepMs), dp2_step_ms: Math.round(two.stepMs), dp_speedup: Math.round((one.stepMs / two.stepMs) * 1000) / 1000 };
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const world = Number(option(args, '--world', '2'));
  const sizes = option(args, '--sizes', '1,4,16,64,256');
  const dpSteps = Number(option(args, '--dp-steps', '6'));
  const outputs = await gang('bench/collectives-rank.ts', world, 1, [sizes]);
  const rows = JSON.parse(outputs[0].trim().split('\n').pop() ?? '[]') as { mb: number; allreduce_gbps: number; memcpy_gbps: number; ratio: number }[];
  for (const r of rows) console.error(`  ${String(r.mb).padStart(4)} MB  all-reduce ${r.allreduce_gbps.toFixed(2)} GB/s  memcpy ${r.memcpy_gbps.toFixed(2)} GB/s  ratio ${r.ratio.toFixed(3)}`);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    bench: 'collectives',
    backend: 'shm',
    world,
    sizes: rows.map((r) => ({ mb: r.mb, allreduce_gbps: round(r.allreduce_gbps), memcpy_gbps: round(r.memcpy_gbps), ratio: round(r.ratio) })),
    ratio_largest: round(rows[rows.length - 1]?.ratio ?? NaN),
    ...(dpSteps > 0 ? await dpStep(dpSteps) : {}),
  };
}
