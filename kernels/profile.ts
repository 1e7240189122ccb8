/**
 * Kernel profiler: wraps a backend so that every kernel call is timed on its own (synchronize
 * before and after). Serialising the stream changes overlap, so totals are an upper bound of the
 * unprofiled run, but the split between kernels is what a profile is for.
 */
import type { Backend, KernelName, Kernels } from './backend.js';

export interface KernelTiming {
  kernel: string;
  calls: number;
  ms: number;
}

export class KernelProfile {
  private readonly rows = new Map<string, KernelTiming>();

  record(key: string, ms: number): void {
    const row = this.rows.get(key) ?? { kernel: key, calls: 0, ms: 0 };
    row.calls++;
    row.ms += ms;
    this.rows.set(key, row);
  }

  /** Rows sorted by total time, with each one's share of the profiled time. */
  top(n = 15): (KernelTiming & { share: number })[] {
    const all = [...this.rows.values()];
    const total = all.reduce((s, r) => s + r.ms, 0);
    return all
      .sort((a, b) => b.ms - a.ms)
      .slice(0, n)
      .map((r) => ({ ...r, ms: +r.ms.toFixed(2), share: +(r.ms / total).toFixed(3) }));
  }

  reset(): void {
    this.rows.clear();
  }
}

/** Variants worth telling apart in a profile (which unary function, which matmul transposes). */
function keyOf(name: KernelName, args: unknown[]): string {
  if (name === 'unary' || name === 'unaryBackward' || name === 'binary') return `${name}:${String(args[0])}`;
  if (name === 'matmul') return `matmul${args[7] ? ':tA' : ''}${args[8] ? ':tB' : ''}`;
  return name;
}

/** A backend whose kernels record into `profile`; storage calls pass straight through. */
export function profiledBackend(backend: Backend, profile: KernelProfile): Backend {
  const kernels: Partial<Kernels> = {};
  for (const [name, fn] of Object.entries(backend.kernels) as [KernelName, (...a: unknown[]) => void][]) {
    (kernels as Record<string, unknown>)[name] = (...args: unknown[]) => {
      backend.synchronize();
      const t0 = performance.now();
      fn(...args);
      backend.synchronize();
      profile.record(keyOf(name, args), performance.now() - t0);
    };
  }
  return { ...backend, kernels, stats: () => backend.stats(), synchronize: () => backend.synchronize() };
}
