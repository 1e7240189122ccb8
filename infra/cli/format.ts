/** Human-readable text for `align status`, `align list` and the end-of-run summary. */
import type { StepSummary, Validation } from '../../activities/types.js';
import { sparkline } from '../progress.js';
import type { RunSummary, RunView } from '../runs.js';

export const num = (x: number | null | undefined, digits = 4): string => (x === null || x === undefined ? '-' : Number(x.toFixed(digits)).toString());
const rate = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));

/** The headline first (with which way is better), then the loss and the recipe's other metrics. */
export function formatValidation(v: Validation | null | undefined): string {
  if (!v) return '-';
  const h = v.headline;
  const head = h && h.metric !== 'loss' ? `${h.metric} ${num(h.value, 4)} (${h.better} is better), ` : '';
  const rest = Object.entries(v.metrics ?? {}).filter(([k]) => k !== h?.metric).map(([k, x]) => `${k} ${num(x)}`);
  return `${head}loss ${num(v.loss)}${rest.length ? `, ${rest.join(', ')}` : ''} (step ${v.step})`;
}

/** `headline before → after` of a run's validations, e.g. `accuracy 0.47 → 1 (higher is better)`. */
export function formatChange(first: Validation | null | undefined, last: Validation | null | undefined): string | null {
  if (!first || !last || first === last || !last.headline) return null;
  const h = last.headline;
  const value = (v: Validation) => (h.metric === 'loss' ? v.loss : v.metrics[h.metric] ?? v.headline?.value);
  return `${h.metric} ${num(value(first))} → ${num(value(last))} (step ${first.step} → ${last.step}; ${h.better} is better)`;
}

/** What to type next, by state. */
function hints(v: RunView): string[] {
  if (v.state === 'RUNNING') {
    const paused = v.progress?.status === 'paused';
    return [paused ? `align resume ${v.runId}` : `align pause ${v.runId}`, `align cancel ${v.runId}`];
  }
  if (v.state === 'COMPLETED' || v.state === 'STOPPED') return [`align export ${v.runId} --out DIR`];
  // Only a run that committed a checkpoint can resume; one that failed before has nothing to resume from.
  const checkpoint = v.resumeFrom !== undefined ? v.resumeFrom : (v.progress?.lastCheckpoint ?? v.result?.lastCheckpoint ?? null);
  return [checkpoint ? `align resume-failed ${v.runId}` : `fix the cause and start again: align run ${v.recipe ?? '<recipe>'} --config …`];
}

export function formatStatus(v: RunView, losses?: readonly number[]): string {
  const p = v.progress;
  const lines = [`run ${v.runId} (${v.recipe ?? 'unknown recipe'})  ${v.state}${p && v.state === 'RUNNING' ? ` · ${p.status}` : ''}`];
  const row = (k: string, val: string) => lines.push(`  ${k.padEnd(11)}${val}`);
  if (p) {
    row('step', `${p.step}/${p.maxSteps}`);
    const series = losses ?? p.recent.map((s: StepSummary) => s.loss);
    row('loss', `${num(p.lastLoss)}${series.length > 1 ? `   ${sparkline(series, 40)} (${losses ? `${series.length} steps` : 'recent steps'})` : ''}`);
    if (p.waiting) row('waiting', p.waiting);
    row('validation', formatValidation(p.lastValidation));
    const change = formatChange(p.firstValidation, p.lastValidation);
    if (change) row('change', change);
    if (p.report?.dropped) row('data', `${p.report.dropped} of ${p.report.records} records dropped by data.overlong (e.g. ${p.report.droppedSamples[0]})`);
    if (p.report?.truncated) row('data', `${p.report.truncated} of ${p.report.records} records cut to trainer.maxLength by data.overlong = truncate`);
    row('throughput', `${rate(p.tokensPerSecond)} tokens/s`);
    row('checkpoint', p.lastCheckpoint ? `${p.lastCheckpoint.uri} (step ${p.lastCheckpoint.step})` : 'none yet');
  } else if (v.progressError) {
    row('progress', v.progressError);
  }
  if (v.result) {
    row('result', `${v.result.status} at step ${v.result.step}`);
    if (v.result.lastCheckpoint && !p) row('checkpoint', `${v.result.lastCheckpoint.uri} (step ${v.result.lastCheckpoint.step})`);
    row('export', v.result.exportUri ?? 'none (the run was stopped before exporting)');
  }
  if (v.failure) {
    row('failure', `${v.failure.type ? `${v.failure.type}: ` : ''}${v.failure.message}${v.failure.activity ? ` (in activity ${v.failure.activity})` : ''}`);
  }
  if (v.resumeFrom) row('resume', `resume-failed starts from step ${v.resumeFrom.step} (${v.resumeFrom.uri}), the newest committed checkpoint`);
  if (v.parentRunId) row('resumed', `from run ${v.parentRunId}`);
  row('started', v.startTime + (v.closeTime ? `, closed ${v.closeTime}` : ''));
  row('next', hints(v).join('   '));
  return lines.join('\n');
}

export function formatList(runs: readonly RunSummary[]): string {
  if (runs.length === 0) return 'no runs yet; start one with: align run sft --config sft.yaml';
  const rows = [['RUN', 'RECIPE', 'STATE', 'STARTED', 'PARENT'], ...runs.map((r) => [r.runId, r.recipe ?? '?', r.state, r.startTime.replace('T', ' ').slice(0, 19), r.parentRunId ?? ''])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** The end of an attached run: outcome, loss curve, metrics, and where the model is. */
export function formatSummary(v: RunView, losses: readonly number[]): string {
  const p = v.progress;
  const lines: string[] = [];
  if (v.result) {
    const r = v.result;
    lines.push(r.status === 'completed' ? `run ${v.runId} completed: ${r.step}/${p?.maxSteps ?? r.step} steps` : `run ${v.runId} stopped at step ${r.step}`);
  } else {
    const f = v.failure;
    lines.push(`run ${v.runId} ${v.state.toLowerCase()}${p ? ` at step ${p.step}` : ''}: ${f ? `${f.type ? `${f.type}: ` : ''}${f.message}${f.activity ? ` (in activity ${f.activity})` : ''}` : 'no details'}`);
  }
  const row = (k: string, val: string) => lines.push(`  ${k.padEnd(11)}${val}`);
  if (losses.length > 0) row('loss', `${num(losses[0])} → ${num(losses.at(-1))}   ${sparkline(losses, 60)}`);
  const lastVal = v.result?.validations.at(-1) ?? p?.lastValidation;
  if (lastVal) row('validation', formatValidation(lastVal));
  const change = formatChange(v.result?.validations[0] ?? p?.firstValidation, lastVal);
  if (change) row('change', change);
  if (p?.tokensPerSecond) row('throughput', `${rate(p.tokensPerSecond)} tokens/s`);
  const ckpt = v.result?.lastCheckpoint ?? p?.lastCheckpoint;
  row('checkpoint', ckpt ? ckpt.uri : 'none');
  if (v.result) row('export', v.result.exportUri ?? `none; write one with: align export ${v.runId} --out DIR`);
  if (!v.result) row('next', ckpt ? `align resume-failed ${v.runId}` : `fix the cause and start again: align run ${v.recipe ?? '<recipe>'} --config …`);
  return lines.join('\n');
}
