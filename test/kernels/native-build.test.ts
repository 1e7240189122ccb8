/**
 * The built addon loads on any x86-64 CPU: AVX instructions (VEX/EVEX, mnemonics starting with
 * "v") appear only in functions of the avx2 and avx512 kernel builds. The guard for what the
 * build relies on (kernels/native/README.md): common code compiled for the baseline, and the
 * static kernel libraries linked baseline first, so a shared inline function resolves to its
 * baseline copy. A reordered link or a helper that escaped its ISA namespace shows up here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ADDON = fileURLToPath(new URL('../../kernels/native/build/Release/aligner_cpu.node', import.meta.url));
const objdump = spawnSync('objdump', ['--version'], { encoding: 'utf8' });
const why = !existsSync(ADDON) ? 'the addon is not built' : objdump.status !== 0 ? 'objdump is not installed' : null;

describe('the native addon build', () => {
  it.skipIf(why !== null)(`has AVX instructions only inside the avx2 and avx512 kernel builds${why ? ` (skipped: ${why})` : ''}`, () => {
    const dis = spawnSync('objdump', ['-d', '-C', '--no-show-raw-insn', ADDON], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
    expect(dis.status).toBe(0);
    const offenders = new Map<string, string>();
    let fn = '';
    for (const line of dis.stdout.split('\n')) {
      const header = /^[0-9a-f]+ <(.*)>:$/.exec(line);
      if (header) {
        fn = header[1];
        continue;
      }
      const insn = /^\s+[0-9a-f]+:\s+(v[a-z0-9]+)\s/.exec(line);
      if (insn && !/aligner::avx(2|512)::/.test(fn) && !offenders.has(fn)) offenders.set(fn, insn[1]);
    }
    expect([...offenders].slice(0, 10).map(([f, i]) => `${i} in ${f}`)).toEqual([]);
  });
});
