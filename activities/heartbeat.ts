/**
 * Heartbeats for long activities. `heartbeat(details)` reports progress now; `keepAlive(fn)` also
 * repeats the activity's latest details every few seconds while `fn` runs, covering phases with
 * no natural progress points (loading a model, a whole evaluation, a precompute part), so that a
 * busy worker is never taken for a dead one. A worker whose event loop is blocked stops
 * heartbeating, as it should.
 */
import { Context } from '@temporalio/activity';

/** The latest details of each running activity (contexts are per attempt). */
const latest = new WeakMap<Context, unknown>();

function currentContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null; // outside an activity (direct calls in tests)
  }
}

export function heartbeat(details: unknown): void {
  const ctx = currentContext();
  if (!ctx) return;
  latest.set(ctx, details);
  ctx.heartbeat(details);
}

/**
 * Runs `fn`, repeating the activity's latest heartbeat details every `everyMs` (default a third
 * of the activity's heartbeat timeout, at most 5 s), so that a beat always arrives in time.
 */
export async function keepAlive<T>(fn: () => Promise<T>, everyMs?: number): Promise<T> {
  const ctx = currentContext();
  const timeout = ctx?.info.heartbeatTimeoutMs;
  const interval = everyMs ?? Math.max(100, Math.min(5_000, timeout ? timeout / 3 : 5_000));
  const timer = ctx ? setInterval(() => ctx.heartbeat(latest.get(ctx) ?? null), interval) : null;
  try {
    return await fn();
  } finally {
    if (timer) clearInterval(timer);
  }
}
