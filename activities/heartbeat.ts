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
/** When each running activity last reported progress (a heartbeat() call), ms since the epoch. */
const progressedAt = new WeakMap<Context, number>();

/** What the last heartbeat of an activity the watchdog gave up on says (TimeoutFailure.lastHeartbeatDetails.hung). */
export interface HangReport {
  /** Seconds without progress. */
  seconds: number;
  /** The details of the last progress report: the phase, the step. */
  last: unknown;
}

function currentContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null; // outside an activity (direct calls in tests)
  }
}

/**
 * Reports progress now. `watch: false` starts a phase with no progress points of its own (loading,
 * a whole validation, a checkpoint): the hang watchdog waits for the next report before it
 * counts again (a dead worker is still found by the heartbeat timeout).
 */
export function heartbeat(details: unknown, opts: { watch?: boolean } = {}): void {
  const ctx = currentContext();
  if (!ctx) return;
  latest.set(ctx, details);
  progressedAt.set(ctx, opts.watch === false ? Infinity : Date.now());
  ctx.heartbeat(details);
}

/**
 * Runs `fn`, repeating the activity's latest heartbeat details every `everyMs` (default a third
 * of the activity's heartbeat timeout, at most 5 s), so that a beat always arrives in time.
 *
 * The hang watchdog: with `hangSeconds`, once no progress has been reported (no heartbeat() call)
 * for that long, the repeats stop after one last beat saying so ({hung: HangReport}). The
 * heartbeat timeout then fails the attempt as retryable, and the workflow moves the run from its
 * last checkpoint and records the hang: a stuck collective or kernel that leaves the event loop
 * free no longer holds a run forever.
 */
export async function keepAlive<T>(fn: () => Promise<T>, o: { everyMs?: number; hangSeconds?: number } = {}): Promise<T> {
  const ctx = currentContext();
  const timeout = ctx?.info.heartbeatTimeoutMs;
  const interval = o.everyMs ?? Math.max(100, Math.min(5_000, timeout ? timeout / 3 : 5_000));
  if (ctx && !progressedAt.has(ctx)) progressedAt.set(ctx, Date.now());
  const timer = ctx ? setInterval(() => {
    const idle = Math.max(0, (Date.now() - (progressedAt.get(ctx) ?? Date.now())) / 1000);
    if (o.hangSeconds && idle >= o.hangSeconds) {
      const hung: HangReport = { seconds: Math.round(idle), last: latest.get(ctx) ?? null };
      ctx.heartbeat({ hung });
      clearInterval(timer!);
      return;
    }
    ctx.heartbeat(latest.get(ctx) ?? null);
  }, interval) : null;
  try {
    return await fn();
  } finally {
    if (timer) clearInterval(timer);
  }
}
