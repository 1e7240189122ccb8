// The front page: runs (state, recipe, step, headline metric, lineage) and pipelines.
import { get } from './api.js';
import { el, fill, num, runLink, stateBadge, when } from './dom.js';

const LISTED = 50;

/** The latest validation's headline metric of a run's status, as "accuracy 0.84". */
function headlineOf(view) {
  const v = view?.progress?.lastValidation ?? view?.result?.validations?.at(-1);
  const h = v?.headline;
  return h ? `${h.metric} ${num(h.value)}` : '—';
}

function stepOf(view) {
  const p = view?.progress;
  if (p) return `${p.step} / ${p.maxSteps}`;
  return view?.result ? String(view.result.step) : '—';
}

/** The runs' statuses, a few at a time (each is a query that a worker answers). */
async function statuses(runs) {
  const out = new Map();
  const queue = [...runs];
  await Promise.all(Array.from({ length: 6 }, async () => {
    for (let r = queue.shift(); r; r = queue.shift()) out.set(r.runId, await get(`/runs/${encodeURIComponent(r.runId)}`).catch(() => null));
  }));
  return out;
}

export async function renderRuns(root) {
  const [{ runs }, { pipelines }] = await Promise.all([get(`/runs?limit=${LISTED}`), get('/pipelines?limit=20').catch(() => ({ pipelines: [] }))]);
  const views = await statuses(runs);
  const rows = runs.map((r) => {
    const v = views.get(r.runId);
    const state = v?.state ?? r.state;
    const shown = state === 'RUNNING' && v?.progress ? `${state} · ${v.progress.status}` : state;
    return el('tr', { 'data-run': r.runId },
      el('td', {}, runLink(r.runId)),
      el('td', {}, r.recipe ?? '—'),
      el('td', {}, stateBadge(shown)),
      el('td', { class: 'num' }, stepOf(v)),
      el('td', {}, headlineOf(v)),
      el('td', {}, r.parentRunId ? runLink(r.parentRunId) : el('span', { class: 'muted' }, '—')),
      el('td', { class: 'muted' }, when(r.startTime)));
  });
  fill(root,
    el('h1', {}, 'Runs'),
    runs.length === 0
      ? el('p', { class: 'muted' }, 'No runs yet. Start one with: npx align run sft --config examples/sft.yaml')
      : el('table', { id: 'runs' },
        el('thead', {}, el('tr', {}, ...['run', 'recipe', 'state', 'step', 'headline', 'resumed from', 'started'].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows)),
    el('h2', {}, 'Pipelines'),
    pipelines.length === 0
      ? el('p', { class: 'muted' }, 'No pipelines yet.')
      : el('table', { id: 'pipelines' },
        el('thead', {}, el('tr', {}, ...['pipeline', 'kind', 'state', 'schedule', 'started'].map((h) => el('th', {}, h)))),
        el('tbody', {}, pipelines.map((p) => el('tr', {},
          el('td', {}, el('a', { href: `#/pipelines/${encodeURIComponent(p.pipelineId)}` }, p.pipelineId)),
          el('td', {}, p.pipeline ?? '—'),
          el('td', {}, stateBadge(p.state)),
          el('td', {}, p.schedule ?? '—'),
          el('td', { class: 'muted' }, when(p.startTime)))))),
  );
}
