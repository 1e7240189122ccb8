/**
 * What a run has used, by phase: wall seconds of its activities, device-seconds (seconds × the
 * devices a phase held: one compute slot of a worker per placed role, so a CPU run's device is
 * its worker) and tokens; and what that costs at `cost.perDeviceHour`. Kept in the workflow's
 * state from what each activity reports, so the totals survive continueAsNew and replays.
 *
 * Deterministic code only (workflow state): no I/O, no clocks.
 */
import type { CostConfig, Usage } from '../activities/types.js';

export const emptyUsage = (): Usage => ({ wallSeconds: 0, deviceSeconds: 0, tokens: 0, phases: {} });

/** Adds one activity's phases (seconds each) to the totals; `devices` is how many devices the activity held. */
export function addUsage(u: Usage, phases: Record<string, number>, o: { devices?: number; tokens?: number } = {}): Usage {
  const devices = o.devices ?? 1;
  const next: Usage = { ...u, phases: { ...u.phases } };
  for (const [phase, seconds] of Object.entries(phases)) {
    if (!Number.isFinite(seconds) || seconds <= 0) continue;
    const p = next.phases[phase] ?? { wallSeconds: 0, deviceSeconds: 0 };
    next.phases[phase] = { wallSeconds: p.wallSeconds + seconds, deviceSeconds: p.deviceSeconds + seconds * devices };
    next.wallSeconds += seconds;
    next.deviceSeconds += seconds * devices;
  }
  next.tokens += o.tokens ?? 0;
  return next;
}

export const deviceHours = (u: Usage): number => u.deviceSeconds / 3600;

/** The money the usage costs, or null without a price. */
export function costOf(u: Usage, cost: CostConfig | undefined): { amount: number; currency: string; perDeviceHour: number } | null {
  if (!cost?.perDeviceHour && cost?.perDeviceHour !== 0) return null;
  return { amount: deviceHours(u) * cost.perDeviceHour, currency: cost.currency, perDeviceHour: cost.perDeviceHour };
}

/** Why the run pauses now for its budget, or null (each budget pauses a run once; resume goes on past it). */
export function budgetReached(u: Usage, maxDeviceHours: number | undefined): string | null {
  if (!maxDeviceHours || deviceHours(u) < maxDeviceHours) return null;
  return `budget reached: ${deviceHours(u).toPrecision(3)} of budget.maxDeviceHours ${maxDeviceHours} device-hours used; align resume goes on past it, align cancel ends the run`;
}

/**
 * Charges one activity's phases to a run's carried usage and applies its budget: returns why the
 * run must pause now, once (the state remembers the budget paused it), or null.
 */
export function charge(
  s: { usage?: Usage; budgetPaused?: boolean }, phases: Record<string, number>, o: { devices?: number; tokens?: number }, maxDeviceHours: number | undefined,
): string | null {
  s.usage = addUsage(s.usage ?? emptyUsage(), phases, o);
  const over = s.budgetPaused ? null : budgetReached(s.usage, maxDeviceHours);
  if (over) s.budgetPaused = true;
  return over;
}
