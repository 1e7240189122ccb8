// A run's page: state and controls, what it waits for, cost, events, the metric plots from the
// metrics ledger, its checkpoints and (online runs) the rollout viewer.
import { get, getOrNull, post } from './api.js';
import { historyCharts } from './charts.js';
import { bytes, duration, el, fact, fill, num, runLink, stateBadge, when } from './dom.js';

/** Which controls a run's state allows (the server refuses the rest with a 409 anyway). */
function allowed(view) {
  const running = view.state === 'RUNNING';
  const status = view.progress?.status;
  return { pause: running && status !== 'paused' && status !== 'stopping', resume: running && status === 'paused', cancel: running && status !== 'stopping' };
}

/** The last control's outcome per run, kept across the page's refreshes. */
const outcomes = new Map();

function controls(view, refresh) {
  const last = outcomes.get(view.runId);
  const say = el('span', { class: last?.failed ? 'error' : 'muted', 'data-role': 'action-result' }, last?.text ?? '');
  const can = allowed(view);
  const button = (op, label) => el('button', {
    type: 'button', 'data-action': op, disabled: !can[op],
    onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        await post(`/runs/${encodeURIComponent(view.runId)}/${op}`);
        outcomes.set(view.runId, { text: `${op} requested`, failed: false });
      } catch (e) {
        outcomes.set(view.runId, { text: e.message, failed: true });
      }
      await refresh();
    },
  }, label);
  return el('div', { class: 'actions' }, button('pause', 'Pause'), button('resume', 'Resume'), button('cancel', 'Cancel (stop after this chunk)'), say);
}

/** Device time by phase, largest first: "training 12.0 s · checkpointing 1.5 s". */
function phasesLine(usage) {
  const phases = Object.entries(usage?.phases ?? {}).sort((a, b) => b[1].deviceSeconds - a[1].deviceSeconds);
  if (phases.length === 0) return null;
  return el('p', { class: 'muted', 'data-role': 'phases' }, 'device time by phase: ', phases.map(([name, t]) => `${name} ${duration(t.deviceSeconds)}`).join(' · '));
}

function usageFacts(p) {
  if (!p?.usage) return [];
  const u = p.usage;
  return [
    fact('wall time', duration(u.wallSeconds)),
    fact('device-hours', num(u.deviceSeconds / 3600), { 'data-role': 'device-hours' }),
    fact('tokens', num(u.tokens)),
    // Cents for real runs; significant digits for a short one, which would otherwise read 0.00.
    p.cost ? fact('cost', `${p.cost.amount >= 1 ? p.cost.amount.toFixed(2) : num(p.cost.amount)} ${p.cost.currency}`, { 'data-role': 'cost' }) : null,
  ];
}

function notices(view) {
  const p = view.progress;
  return [
    p?.waiting ? el('div', { class: 'notice', 'data-role': 'waiting' }, p.waiting) : null,
    p?.pauseReason ? el('div', { class: 'notice' }, p.pauseReason) : null,
    view.progressError ? el('div', { class: 'notice' }, view.progressError) : null,
    view.failure ? el('div', { class: 'notice bad', 'data-role': 'failure' }, view.failure.message) : null,
    view.resumeFrom ? el('div', { class: 'muted' }, `resume-failed would continue from step ${view.resumeFrom.step}: npx align resume-failed ${view.runId}`) : null,
  ];
}

function eventsTable(events) {
  if (!events?.length) return null;
  return [el('h2', {}, 'Events'), el('table', { id: 'events' },
    el('thead', {}, el('tr', {}, el('th', {}, 'event'), el('th', {}, 'moved on from step'), el('th', {}, 'worker'), el('th', {}, 'detail'))),
    el('tbody', {}, events.map((e) => el('tr', {}, el('td', {}, e.type), el('td', { class: 'num' }, e.step), el('td', {}, e.worker), el('td', {}, e.detail)))))];
}

function checkpointsTable(list) {
  if (!list) return [el('h2', {}, 'Checkpoints'), el('p', { class: 'muted' }, 'None committed yet.')];
  return [el('h2', {}, 'Checkpoints'), el('table', { id: 'checkpoints' },
    el('thead', {}, el('tr', {}, ...['step', 'created', 'size', 'manifest sha256', 'files'].map((h) => el('th', {}, h)))),
    el('tbody', {}, list.checkpoints.map((c) => el('tr', { 'data-step': c.step },
      el('td', { class: 'num' }, c.step),
      el('td', { class: 'muted' }, when(c.createdAt)),
      el('td', { class: 'num' }, bytes(c.bytes)),
      el('td', { class: 'mono', title: c.manifestSha256 }, c.manifestSha256.slice(0, 16)),
      el('td', {}, el('details', {}, el('summary', {}, `${c.files.length} files`),
        el('table', {}, el('tbody', {}, c.files.map((f) => el('tr', {}, el('td', { class: 'mono' }, f.name), el('td', { class: 'num' }, bytes(f.size)), el('td', { class: 'mono', title: f.sha256 }, f.sha256.slice(0, 16))))))))))))];
}

/** The rollout viewer: the samples of one iteration, with their rewards. */
function rolloutViewer(runId, first) {
  const box = el('section', { id: 'rollouts' });
  const show = (view) => {
    const pick = el('select', { 'data-role': 'iteration', onchange: async (ev) => show(await get(`/runs/${encodeURIComponent(runId)}/rollouts?iteration=${ev.target.value}`)) },
      view.iterations.map((i) => el('option', { value: i, selected: i === view.iteration }, `iteration ${i}`)));
    const scored = view.samples.filter((s) => s.reward !== null);
    const mean = scored.length ? scored.reduce((a, s) => a + s.reward, 0) / scored.length : null;
    fill(box,
      el('h2', {}, 'Rollouts'),
      el('p', {}, pick, ` ${view.samples.length} samples · mean reward ${num(mean)} · stages ${view.stages.map((s) => s.stage).join(', ')}`),
      el('table', {},
        el('thead', {}, el('tr', {}, ...['row', 'prompt', 'response', 'reward', 'trains', 'policy step'].map((h) => el('th', {}, h)))),
        el('tbody', {}, view.samples.map((s) => el('tr', { 'data-row': s.row },
          el('td', { class: 'num' }, s.row), el('td', { class: 'rollout-response' }, s.prompt), el('td', { class: 'rollout-response' }, s.response + (s.ended ? '' : ' …')),
          el('td', { class: 'num' }, num(s.reward)), el('td', {}, s.trains === null ? '—' : s.trains ? 'yes' : 'no'), el('td', { class: 'num' }, s.policyStep))))));
  };
  show(first);
  return box;
}

/**
 * `onlineRecipes`: the recipes that keep a rollout ledger (GET /recipes, kind online); `refresh`
 * shows the page again (after a control was used).
 */
export async function renderRun(root, runId, { onlineRecipes, refresh }) {
  const id = encodeURIComponent(runId);
  const [view, metrics, checkpoints] = await Promise.all([get(`/runs/${id}`), get(`/runs/${id}/metrics`), getOrNull(`/runs/${id}/checkpoints`)]);
  const online = onlineRecipes.has(view.recipe);
  const rollouts = online ? await getOrNull(`/runs/${id}/rollouts`) : null;
  const p = view.progress;
  const lineage = metrics.lineage.length > 1 ? el('p', { class: 'muted' }, 'history from ', ...metrics.lineage.flatMap((l, i) => [i ? ' → ' : '', runLink(l.runId), ` (steps ${l.fromStep}–${l.toStep})`])) : null;
  fill(root,
    el('h1', {}, el('span', { class: 'mono' }, runId)),
    el('p', {}, `${view.recipe ?? 'run'} · `, stateBadge(view.state), p ? el('span', { 'data-role': 'status' }, ` · ${p.status}${p.stage ? ` (${p.stage})` : ''}`) : null,
      ` · started ${when(view.startTime)}`, view.parentRunId ? el('span', {}, ' · resumed from ', runLink(view.parentRunId)) : null),
    ...notices(view),
    controls(view, refresh),
    el('div', { class: 'facts' },
      fact('step', p ? `${p.step} / ${p.maxSteps}` : view.result ? String(view.result.step) : '—', { 'data-role': 'step' }),
      fact('last loss', num(p?.lastLoss)),
      p?.lastValidation?.headline ? fact(`validation ${p.lastValidation.headline.metric}`, num(p.lastValidation.headline.value)) : null,
      fact('tokens / s', num(p?.tokensPerSecond)),
      ...usageFacts(p)),
    phasesLine(p?.usage),
    el('h2', {}, 'Metrics'),
    lineage,
    metrics.steps.length + metrics.validations.length + metrics.evaluations.length === 0
      ? el('p', { class: 'muted' }, 'Nothing in the metrics ledger yet: it is written as each chunk commits its checkpoint.')
      : el('div', { class: 'charts', id: 'charts' }, historyCharts(metrics)),
    ...(eventsTable(p?.events) ?? []),
    ...checkpointsTable(checkpoints),
    rollouts ? rolloutViewer(runId, rollouts) : online ? el('p', { class: 'muted' }, 'No rollouts yet.') : null,
  );
  return view;
}
