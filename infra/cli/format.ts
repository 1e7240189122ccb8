/** Human-readable text for `align status`, `align list` and the end-of-run summary. */
import type { IterationView } from '../../activities/online/ledger-view.js';
import type { Progress, StepSummary, Validation } from '../../activities/types.js';
import { formatNumber, sparklineWithRange } from '../progress.js';
import type { RunSummary, RunView } from '../runs.js';

export const num = formatNumber;
const rate = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));

/** The headline first (with which way is better), then the loss and the recipe's other metrics. */
export function formatValidation(v: Validation | null | undefined): string {
  if (!v) return '-';
  const h = v.headline;
  const head = h && h.metric !== 'loss' ? `${h.metric} ${num(h.value, 4)} (${h.better} is better), ` : '';
  // Stage times of online iterations have their own row (formatPhases).
  const rest = Object.entries(v.metrics ?? {}).filter(([k]) => k !== h?.metric && !k.endsWith('Seconds')).map(([k, x]) => `${k} ${num(x)}`);
  return `${head}loss ${num(v.loss)}${rest.length ? `, ${rest.join(', ')}` : ''} (step ${v.step})`;
}

/** `headline before → after` of a run's validations, e.g. `accuracy 0.47 → 1 (higher is better)`. */
export function formatChange(first: Validation | null | undefined, last: Validation | null | undefined): string | null {
  if (!first || !last || first === last || !last.headline) return null;
  const h = last.headline;
  const value = (v: Validation) => (h.metric === 'loss' ? v.loss : v.metrics[h.metric] ?? v.headline?.value);
  return `${h.metric} ${num(value(first))} → ${num(value(last))} (step ${first.step} → ${last.step}; ${h.better} is better)`;
}

/** Device-hours, the biggest phases, tokens and the cost: `0.0021 device-hours (training 80%, checkpointing 12%, …), 1,200 tokens; cost 0.0052 USD at 2.5/device-hour`. */
export function formatUsage(p: Progress): string {
  const u = p.usage!;
  const top = Object.entries(u.phases).sort((a, b) => b[1].deviceSeconds - a[1].deviceSeconds).slice(0, 4)
    .map(([k, x]) => `${k} ${Math.round((100 * x.deviceSeconds) / u.deviceSeconds)}%`);
  const cost = p.cost ? `; cost ${num(p.cost.amount, 4)} ${p.cost.currency} at ${num(p.cost.perDeviceHour)}/device-hour` : '';
  return `${num(u.deviceSeconds / 3600, 4)} device-hours (${top.join(', ')}), ${u.tokens.toLocaleString('en-US')} tokens${cost}`;
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

/** An online run reports its stage (a string, or null between iterations); an offline run has none. */
const isLoop = (p: Progress | null | undefined): boolean => p !== null && p !== undefined && p.stage !== undefined;

const PHASES = ['generate', 'score', 'logprobs', 'values', 'advantages', 'train', 'checkpoint', 'eval'];

/** Seconds of each stage of an iteration, in stage order: `generate 0.41 s, score 0.02 s, …`. */
export function formatPhases(s: StepSummary | undefined): string | null {
  if (!s) return null;
  const parts = PHASES.filter((p) => s.metrics[`${p}Seconds`] !== undefined).map((p) => `${p} ${num(s.metrics[`${p}Seconds`], 2)} s`);
  return parts.length ? parts.join(', ') : null;
}

/** The policy on held-out prompts, first evaluation → last: `reward 0.12 (iteration 0) → 0.95 (iteration 14), 32 prompts`. */
function formatHeldOut(evals: readonly { iteration: number; metrics: Record<string, number> }[] | undefined): string | null {
  if (!evals?.length) return null;
  const [a, b] = [evals[0], evals.at(-1)!];
  const one = (e: typeof a) => `${num(e.metrics.evalReward, 4)} (iteration ${e.iteration})`;
  return `reward ${one(a)}${evals.length > 1 ? ` → ${one(b)}` : ''}, ${a.metrics.evalPrompts} held-out prompts`;
}

/** The headline over iterations (reward), with its sparkline. */
function headlineCurve(vs: readonly Validation[]): string | null {
  const h = vs.at(-1)?.headline;
  if (!h || vs.length < 1) return null;
  const series = vs.map((v) => v.metrics[h.metric] ?? v.headline.value);
  return `${h.metric} ${num(series[0], 3)} → ${num(series.at(-1), 3)}   ${sparklineWithRange(series, 40)} (${series.length} iterations; ${h.better} is better)`;
}

export function formatStatus(v: RunView, losses?: readonly number[]): string {
  const p = v.progress;
  const lines = [`run ${v.runId} (${v.recipe ?? 'unknown recipe'})  ${v.state}${p && v.state === 'RUNNING' ? ` · ${p.status}` : ''}`];
  const row = (k: string, val: string) => lines.push(`  ${k.padEnd(11)}${val}`);
  if (p && isLoop(p)) {
    row('iteration', `${p.step}/${p.maxSteps}${p.stage ? ` · stage ${p.stage}` : ''}`);
    const last = p.recent.at(-1);
    if (last) {
      const m = last.metrics;
      row('last', `reward ${num(m.reward)} ± ${num(m.rewardStd, 3)}${m.kl !== undefined ? `, KL ${num(m.kl, 3)}` : ''}${m.entropy !== undefined ? `, entropy ${num(m.entropy, 3)}` : ''}, response ${num(m.responseLength, 1)} tokens, policy loss ${num(last.loss)}`);
      const phases = formatPhases(last);
      if (phases) row('phases', phases);
    }
    const curve = headlineCurve(p.recent.map((s) => ({ step: s.step, loss: s.loss, metrics: s.metrics, headline: p.lastValidation?.headline ?? { metric: 'reward', better: 'higher', value: s.metrics.reward } })));
    if (curve) row('curve', `${curve.replace(/\(\d+ iterations/, '(recent iterations')}`);
    if (p.waiting) row('waiting', p.waiting);
    const change = formatChange(p.firstValidation, p.lastValidation);
    if (change) row('change', change.replace(/\(step /, '(iteration '));
    const heldOut = formatHeldOut(p.evaluations);
    if (heldOut) row('held-out', heldOut);
    row('rollouts', `align rollouts ${v.runId}`);
    row('checkpoint', p.lastCheckpoint ? `${p.lastCheckpoint.uri} (iteration ${p.lastCheckpoint.step})` : 'none yet');
  } else if (p) {
    row('step', `${p.step}/${p.maxSteps}`);
    const series = losses ?? p.recent.map((s: StepSummary) => s.loss);
    row('loss', `${num(p.lastLoss)}${series.length > 1 ? `   ${sparklineWithRange(series, 40)} (${losses ? `all ${series.length} steps; align metrics ${v.runId}` : 'recent steps'})` : ''}`);
    if (p.waiting) row('waiting', p.waiting);
    for (const e of (p.events ?? []).slice(-3)) row(e.type, `at step ${e.step} on ${e.worker}: ${e.detail}`);
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
  if (p?.pauseReason) row('paused', p.pauseReason);
  if (p?.usage && p.usage.deviceSeconds > 0) row('usage', formatUsage(p));
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
    const unit = isLoop(p) ? 'iteration' : 'step';
    lines.push(r.status === 'completed' ? `run ${v.runId} completed: ${r.step}/${p?.maxSteps ?? r.step} ${unit}s` : `run ${v.runId} stopped at ${unit} ${r.step}`);
  } else {
    const f = v.failure;
    lines.push(`run ${v.runId} ${v.state.toLowerCase()}${p ? ` at step ${p.step}` : ''}: ${f ? `${f.type ? `${f.type}: ` : ''}${f.message}${f.activity ? ` (in activity ${f.activity})` : ''}` : 'no details'}`);
  }
  const row = (k: string, val: string) => lines.push(`  ${k.padEnd(11)}${val}`);
  if (isLoop(p) && v.result) {
    const curve = headlineCurve(v.result.validations);
    if (curve) row('curve', curve);
    const heldOut = formatHeldOut(v.result.evaluations);
    if (heldOut) row('held-out', heldOut);
    const phases = formatPhases(p?.recent.at(-1));
    if (phases) row('phases', `${phases} (last iteration)`);
  } else if (losses.length > 0) row('loss', `${num(losses[0])} → ${num(losses.at(-1))}   ${sparklineWithRange(losses, 60)}`);
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

const clip = (t: string, n: number) => (t.length > n ? `${t.slice(0, n - 1)}…` : t);

/** `align rollouts`: an iteration's samples from the ledger, best first within the shown ones. */
export function formatRollouts(view: IterationView, limit: number): string {
  const lines = [`run ${view.runId}, iteration ${view.iteration} (iterations ${view.iterations[0]}…${view.iterations.at(-1)} in the ledger)`];
  lines.push(`  stages     ${view.stages.map((s) => `${s.stage} (${s.records} records${s.parts > 1 ? ` in ${s.parts} parts` : ''})`).join(', ')}`);
  const scored = view.samples.filter((s) => s.reward !== null).map((s) => s.reward!);
  if (scored.length) lines.push(`  reward     mean ${num(scored.reduce((a, b) => a + b, 0) / scored.length)} over ${scored.length} samples, min ${num(Math.min(...scored))}, max ${num(Math.max(...scored))}`);
  lines.push('');
  const rows = [['ROW', 'REWARD', 'ENDED', 'TRAINS', 'PROMPT', 'RESPONSE'], ...view.samples.slice(0, limit).map((s) => [
    String(s.row), s.reward === null ? '-' : num(s.reward, 3), s.ended ? 'yes' : 'no', s.trains === null ? '-' : s.trains ? 'yes' : 'no',
    JSON.stringify(clip(s.prompt, 40)), JSON.stringify(clip(s.response, 60)),
  ])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  lines.push(...rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()));
  if (view.samples.length > limit) lines.push(`… ${view.samples.length - limit} more (--limit ${view.samples.length})`);
  return lines.join('\n');
}
