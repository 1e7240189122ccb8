/**
 * Chooses the BLAS behind the native backend's matmul by measuring it here.
 *
 * Candidates: the system's BLAS (what the addon's own search finds: libopenblas.so.0 first), and
 * every library infra/blas.sh installed under .tools/blas/<name>/ (scipy-openblas 0.3.34, oneMKL
 * 2026.2). For an OpenBLAS whose detected core is narrower than this CPU's widest vector ISA (an
 * older OpenBLAS that does not know a newer core falls back to Prescott), the same library with
 * OPENBLAS_CORETYPE forced from CPUID (SkylakeX for AVX-512, Haswell for AVX2) is one more.
 *
 * Each candidate is a child process that loads the addon with it (ALIGN_BLAS=<path>) and times
 * single matmul calls through the real backend at the default thread count, on the products of a
 * training step. The children stay up and take turns, shape by shape, for ROUNDS rounds; per
 * shape the best call counts. Taking turns finely means other work on a shared machine slows
 * every candidate alike instead of deciding alone. Each product is checked against a float64
 * dot product at a few entries first, so a broken library cannot win. About 1–2 s per candidate.
 *
 * Winner: the highest geometric mean GFLOP/s among the candidates whose kernels use this CPU's
 * widest ISA (blasCore().isa === cpuIsa(); among all of them on a CPU below AVX2, or when none
 * does). Written to .tools/blas/choice.json (or $ALIGN_BLAS_CHOICE), which kernels/native-backend.ts
 * loads; prints one line with the winner and every geomean.
 *
 *   tsx infra/blas-choose.ts            measure and write the choice (run by infra/blas.sh)
 *   tsx infra/blas-choose.ts --child    (internal) one candidate: a JSON line when ready, then one
 *                                       per `go` line read on stdin
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { BlasCore } from '../kernels/native-backend.js';
import { checkGemmEntries } from '../kernels/gemm-check.js';
import { xorshiftF32 } from '../kernels/random.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BLAS_DIR = path.join(ROOT, '.tools', 'blas');
const SELF = fileURLToPath(import.meta.url);
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

/** The library file a folder under .tools/blas is recognised by. */
const LIBRARIES = ['libscipy_openblas.so', 'libmkl_rt.so.3', 'libopenblas.so.0'];

/** M×N×K with transposes as a linear layer's forward (x·Wᵀ), input gradient (g·W) and weight gradient (gᵀ·x) run them. */
const SHAPES = [
  { name: '512x512x512', M: 512, N: 512, K: 512, tA: false, tB: false },
  { name: '1024x1024x1024 NT', M: 1024, N: 1024, K: 1024, tA: false, tB: true },
  { name: '256x1024x1024', M: 256, N: 1024, K: 1024, tA: false, tB: false },
  { name: '2048x2048x512 TN', M: 2048, N: 2048, K: 512, tA: true, tB: false },
];
const ROUNDS = 4; // every candidate times every shape this many times, in turn
const TURN_MS = 60; // one turn: calls of one shape until this much time has passed (2 to 20 calls)
const CHILD_TIMEOUT_MS = 120_000;

type Isa = BlasCore['isa'];
const RANK: Record<string, number> = { unknown: -1, baseline: 0, avx2: 1, avx512: 2 };
/** The OpenBLAS core to force for each ISA (OpenBLAS's own names, driver/others/dynamic.c). */
const FORCED_CORE: Partial<Record<Isa, string>> = { avx512: 'SkylakeX', avx2: 'Haswell' };

interface Ready {
  core: BlasCore;
  info: string;
  cpuIsa: Isa;
  threads: number;
}

interface Measured {
  path?: string;
  env?: Record<string, string>;
  info?: string;
  family?: BlasCore['family'];
  version?: string;
  core?: string;
  coreIsa?: Isa;
  gflops?: Record<string, number>;
  geomean?: number;
  error?: string;
}


async function child(): Promise<void> {
  const { blasCore, blasInfo, cpuIsa, getNumThreads, nativeBackend } = await import('../kernels/native-backend.js');
  const backend = nativeBackend();
  const matmul = backend.kernels.matmul!;
  const timers = SHAPES.map(({ name, M, N, K, tA, tB }) => {
    const hostA = xorshiftF32(M * K, 1 + M), hostB = xorshiftF32(K * N, 2 + N);
    const a = backend.alloc('f32', M * K), b = backend.alloc('f32', K * N), out = backend.alloc('f32', M * N);
    backend.write(a, hostA);
    backend.write(b, hostB);
    const call = () => {
      const t0 = performance.now();
      matmul(a, b, out, 1, M, N, K, tA, tB, 0, 0);
      backend.synchronize();
      return performance.now() - t0;
    };
    call();
    call();
    checkGemmEntries(backend.readSync(out), hostA, hostB, M, N, K, tA, tB, name);
    return { flops: 2 * M * N * K, call };
  });
  const ready: Ready = { core: blasCore(), info: blasInfo(), cpuIsa: cpuIsa(), threads: getNumThreads() };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  // `go <shape index>`: one turn of that shape, answered with its best GFLOP/s.
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, arg] = line.trim().split(' ');
    if (cmd !== 'go') break;
    const { flops, call } = timers[Number(arg)]!;
    let best = Infinity;
    const start = performance.now();
    for (let r = 0; r < 20 && (r < 2 || performance.now() - start < TURN_MS); r++) best = Math.min(best, call());
    process.stdout.write(`${(flops / (best * 1e6)).toFixed(2)}\n`);
  }
}

/** One candidate's child process: `next()` is its next stdout line (rejects when it dies or hangs). */
class Candidate {
  private readonly proc;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(
    readonly lib: string,
    readonly env: Record<string, string>,
  ) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ALIGN_BLAS: lib, ...env };
    delete childEnv.ALIGN_BLAS_CHOICE;
    delete childEnv.ALIGN_DISABLE_BLAS;
    this.proc = spawn(TSX, [SELF, '--child'], { env: childEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-2000)));
    this.proc.on('error', (err) => (this.stderr += err.message));
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  get label(): string {
    return `ALIGN_BLAS=${this.lib}${Object.entries(this.env).map(([k, v]) => ` ${k}=${v}`).join('')}`;
  }

  async next(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${CHILD_TIMEOUT_MS / 1000} s`)), CHILD_TIMEOUT_MS);
    });
    try {
      const r = await Promise.race([this.lines.next(), timeout]);
      if (r.done) {
        const code = await new Promise((resolve) => (this.proc.exitCode !== null || this.proc.signalCode !== null
          ? resolve(this.proc.exitCode ?? this.proc.signalCode)
          : this.proc.once('close', (c, s) => resolve(c ?? s))));
        const why = this.stderr.trim().split('\n').slice(-3).join(' | ');
        throw new Error(why || `exit ${String(code)}`);
      }
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  send(line: string): void {
    if (this.proc.stdin.writable) this.proc.stdin.write(`${line}\n`);
  }

  stop(): void {
    this.send('quit');
    this.proc.stdin.end();
    setTimeout(() => this.proc.kill(), 5000).unref();
  }
}

const geomean = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const relative = (p: string) => (p.startsWith(ROOT) ? path.relative(ROOT, p) : p);

/** The shared libraries in a candidate's folder: all of them must be there at load. */
function libraryFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.so(\.|$)/.test(f) && statSync(path.join(dir, f)).isFile())
    .sort()
    .map((f) => path.join(dir, f));
}

async function main(): Promise<number> {
  // [name, library ('system': the addon's own search), the files it needs (none listed: just itself)].
  const wanted: { name: string; lib: string; files: string[] }[] = [{ name: 'system', lib: 'system', files: [] }];
  if (existsSync(BLAS_DIR)) {
    for (const dir of readdirSync(BLAS_DIR).sort()) {
      const full = path.join(BLAS_DIR, dir);
      if (dir.startsWith('.') || !statSync(full).isDirectory()) continue;
      const lib = LIBRARIES.find((l) => existsSync(path.join(full, l)));
      if (lib) wanted.push({ name: dir, lib: path.join(full, lib), files: libraryFiles(full) });
    }
  }

  const measured: Record<string, Measured> = {};
  const files: Record<string, string[]> = {};
  const running: { name: string; c: Candidate; gflops: number[] }[] = [];
  let cpuIsa: Isa = 'unknown';
  let threads = 0;
  // Starts a candidate and waits until it is loaded, warmed up and checked.
  const start = async (name: string, lib: string, env: Record<string, string>, needs: string[]): Promise<Ready | null> => {
    const c = new Candidate(lib, env);
    let ready: Ready;
    try {
      ready = JSON.parse(await c.next()) as Ready;
    } catch (err) {
      measured[name] = { error: `${c.label}: ${(err as Error).message}` };
      c.stop();
      return null;
    }
    if (ready.core.family === 'fallback') {
      c.stop(); // 'system' where the system has no BLAS
      return null;
    }
    cpuIsa = ready.cpuIsa;
    threads = ready.threads;
    const { core } = ready;
    measured[name] = {
      path: relative(core.path), env, info: ready.info, family: core.family, version: core.version, core: core.core, coreIsa: core.isa,
    };
    files[name] = needs.length > 0 ? needs.map(relative) : [relative(core.path)];
    running.push({ name, c, gflops: SHAPES.map(() => 0) });
    return ready;
  };
  try {
    for (const w of wanted) {
      const r = await start(w.name, w.lib, {}, w.files);
      // An OpenBLAS that picked kernels narrower than the CPU: the same library with the core forced.
      const forced = r && FORCED_CORE[r.cpuIsa];
      if (r && forced && r.core.family === 'openblas' && RANK[r.core.isa]! < RANK[r.cpuIsa]! && !process.env.OPENBLAS_CORETYPE) {
        await start(`${w.name}+${forced}`, r.core.path, { OPENBLAS_CORETYPE: forced }, w.files);
      }
    }
    // Turns: round by round, shape by shape, each candidate in turn (one at a time: they share the cores).
    for (let round = 0; round < ROUNDS; round++) {
      for (let s = 0; s < SHAPES.length; s++) {
        for (const r of [...running]) {
          try {
            r.c.send(`go ${s}`);
            r.gflops[s] = Math.max(r.gflops[s]!, Number(await r.c.next()));
          } catch (err) {
            measured[r.name] = { ...measured[r.name], error: `${r.c.label}: ${(err as Error).message}` };
            running.splice(running.indexOf(r), 1);
            r.c.stop();
          }
        }
      }
    }
  } finally {
    for (const r of running) r.c.stop();
  }
  for (const r of running) {
    const m = measured[r.name]!;
    m.gflops = Object.fromEntries(SHAPES.map((shape, s) => [shape.name, +r.gflops[s]!.toFixed(1)]));
    m.geomean = +geomean(r.gflops).toFixed(1);
  }

  const out = process.env.ALIGN_BLAS_CHOICE || path.join(BLAS_DIR, 'choice.json');
  const ok = Object.entries(measured).filter(([, m]) => m.geomean !== undefined && m.error === undefined);
  const failed = Object.entries(measured).filter(([, m]) => m.error !== undefined);
  for (const [, m] of failed) console.error(`blas: WARNING: a candidate failed: ${m.error}`);
  if (ok.length === 0) {
    rmSync(out, { force: true });
    if (failed.length > 0) {
      console.error('blas: ERROR: no BLAS candidate could be measured (see the warnings above)');
      return 1;
    }
    console.log('blas: no BLAS library to choose from (no system BLAS, none in .tools/blas); matmul uses its own GEMM');
    return 0;
  }
  // The CPU's widest ISA first (a narrower core is a library that did not know this CPU), then speed.
  const wide = ok.filter(([, m]) => cpuIsa !== 'baseline' && m.coreIsa === cpuIsa);
  const pool = wide.length > 0 ? wide : ok;
  const [name, best] = pool.reduce((a, b) => (b[1].geomean! > a[1].geomean! ? b : a));
  const choice = {
    candidate: name,
    path: best.path!,
    env: best.env ?? {},
    files: files[name]!,
    family: best.family,
    version: best.version,
    info: best.info,
    core: best.core,
    coreIsa: best.coreIsa,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpuIsa,
    threads,
    rule: wide.length > 0
      ? `highest geometric mean GFLOP/s among the candidates whose kernels use this CPU's widest ISA (${cpuIsa})`
      : "highest geometric mean GFLOP/s (no candidate has kernels for this CPU's widest ISA)",
    measured,
    chosenAt: new Date().toISOString(),
  };
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(`${out}.tmp`, `${JSON.stringify(choice, null, 2)}\n`);
  renameSync(`${out}.tmp`, out);
  const all = [...ok].sort((a, b) => b[1].geomean! - a[1].geomean!).map(([n, m]) => `${n} ${m.geomean!.toFixed(1)}`).join(', ');
  const per = `${SHAPES.length} shapes, ${threads} thread${threads === 1 ? '' : 's'}`;
  console.log(`blas: chose ${name} (${best.info}); geomean GFLOP/s over ${per}: ${all}`);
  return 0;
}

(process.argv.includes('--child') ? child().then(() => 0) : main()).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
