/**
 * Benchmark dispatcher: `npm run bench -- <name> [options]` (`npm run bench -- --help` lists them).
 *
 * A benchmark is a module `bench/<name>.ts` that exports
 *   export async function run(args: string[]): Promise<Record<string, unknown>>;
 *   export const help: string;   // optional, shown by `npm run bench -- <name> --help`
 * It may print progress to stderr; the dispatcher prints its result last, as ONE JSON line on
 * stdout, so scripts can read it with `tail -n 1`. Every line carries the machine it ran on: `cpu`
 * (model name), `isa` (its widest vector ISA), `kernels` (the build of our own kernels in use:
 * avx512, avx2 or baseline) and `blas` (blasInfo(): the BLAS family and kernels behind matmul),
 * unless the benchmark reports them itself.
 */
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The benchmarks we plan for, with one line each; any other bench/<name>.ts is listed too. */
const KNOWN: Record<string, string> = {
  gemm: 'fp32 GEMM GFLOP/s on the native CPU backend, as a ratio of the FMA peak measured in the same run',
  'train-cpu': 'training steps of the small Llama on the CPU backend, against PyTorch (bench/python/train_step.py)',
  overhead: 'a 200-step SFT run as a plain loop vs through Temporal with checkpoints every 50 steps',
  generate: 'batched greedy decoding with the KV cache, against transformers generate() (bench/python/generate.py)',
  rl: 'one PPO iteration (d=512, 8 layers, 64 prompts × 128 new tokens) through Temporal: per-phase seconds, generation vs transformers, orchestration share',
  failover: 'kill -9 of the worker training a run → its next step on another worker; 8 runs queued on 2 workers vs one after another',
  collectives: 'all-reduce bandwidth between 2 processes over the shared-memory ProcessGroup, 1–256 MB, as a ratio of memcpy bandwidth',
};

interface BenchModule {
  run(args: string[]): Promise<Record<string, unknown>>;
  help?: string;
}

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** cpu, isa, kernels and blas of this machine (blas says why when the native backend does not load). */
async function machineFacts(): Promise<Record<string, unknown>> {
  const native = await import('../kernels/native-backend.js');
  const available = native.nativeAvailable();
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    isa: available.ok ? native.cpuIsa() : 'unknown',
    kernels: available.ok ? native.kernelIsa() : 'unknown',
    blas: available.ok ? native.blasInfo() : `native backend unavailable: ${available.reason}`,
  };
}

function moduleFile(name: string): string {
  return path.join(benchDir, `${name}.ts`);
}

/** Known names plus any bench/<name>.ts on disk (this file excepted), sorted. */
function benchmarkNames(): string[] {
  const onDisk = readdirSync(benchDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && f !== 'run.ts')
    .map((f) => f.slice(0, -3))
    .filter((n) => NAME.test(n));
  return [...new Set([...Object.keys(KNOWN), ...onDisk])].sort();
}

function usage(): string {
  const names = benchmarkNames();
  const width = Math.max(...names.map((n) => n.length));
  const lines = names.map((n) => {
    const what = KNOWN[n] ?? '';
    const missing = existsSync(moduleFile(n)) ? '' : ' (not written yet)';
    return `  ${n.padEnd(width)}  ${what}${missing}`;
  });
  return [
    'Usage: npm run bench -- <name> [options]',
    '       npm run bench -- <name> --help    options of one benchmark',
    '',
    'Benchmarks:',
    ...lines,
    '',
    'Each prints its result last, as one JSON line on stdout.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? console.error : console.log)(usage());
    return name === undefined ? 2 : 0;
  }
  const names = benchmarkNames();
  if (!NAME.test(name) || !names.includes(name)) {
    console.error(`bench: unknown benchmark '${name}'. Valid names: ${names.join(', ')}.\n\n${usage()}`);
    return 2;
  }
  const file = moduleFile(name);
  if (!existsSync(file)) {
    console.error(`bench: '${name}' is planned but bench/${name}.ts is not written yet.`);
    return 2;
  }
  const mod = (await import(pathToFileURL(file).href)) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') {
    console.error(`bench: bench/${name}.ts does not export 'async function run(args: string[])'.`);
    return 1;
  }
  if (args.includes('--help') || args.includes('-h')) {
    console.log(mod.help ?? `bench ${name}: no options documented (see bench/${name}.ts).`);
    return 0;
  }
  const result = await mod.run(args);
  console.log(JSON.stringify({ bench: result.bench, ...(await machineFacts()), ...result }));
  return 0;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a native backend's worker threads or handles must not keep the process alive.
  (code) => process.exit(code),
  (err: unknown) => {
    // Bad options (node:util parseArgs, or a benchmark's own "bench <name>: ..." checks) need no stack.
    const code = (err as { code?: unknown } | null)?.code;
    if (err instanceof Error && ((typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) || err.message.startsWith('bench '))) {
      console.error(`${err.message.startsWith('bench ') ? '' : 'bench: '}${err.message} (see --help)`);
      process.exit(2);
    }
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
