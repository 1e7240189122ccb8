// A pipeline's stage tree: each stage's recipe or task, state, run, inputs and output.
import { get } from './api.js';
import { duration, el, fill, runLink, stateBadge, when } from './dom.js';

export async function renderPipeline(root, pipelineId) {
  const v = await get(`/pipelines/${encodeURIComponent(pipelineId)}`);
  const stages = v.record?.stages ?? [];
  fill(root,
    el('h1', {}, `${v.pipeline ?? 'pipeline'} `, el('span', { class: 'mono' }, pipelineId)),
    el('p', {}, stateBadge(v.state), ` · started ${when(v.startTime)}`, v.closeTime ? ` · closed ${when(v.closeTime)}` : ''),
    v.failure ? el('div', { class: 'notice bad' }, v.failure.message) : null,
    el('h2', {}, 'Stages'),
    stages.length === 0
      ? el('p', { class: 'muted' }, 'The pipeline has not recorded its stages yet.')
      : el('ol', { class: 'tree', id: 'stages' }, stages.map((s) => el('li', { class: `stage-${s.state}`, 'data-stage': s.name, 'data-kind': s.kind },
        el('div', {}, el('strong', {}, s.name), ` (${s.kind === 'run' ? 'recipe' : 'data task'} ${s.what}) · `, el('span', { class: 'state' }, s.state),
          v.seconds?.[s.name] !== undefined ? ` · ${duration(v.seconds[s.name])}` : ''),
        s.runId ? el('div', {}, 'run ', runLink(s.runId)) : null,
        s.failedRuns?.length ? el('div', { class: 'muted' }, 'earlier failed runs: ', ...s.failedRuns.flatMap((r, i) => [i ? ', ' : '', runLink(r)])) : null,
        s.resumedFrom ? el('div', { class: 'muted' }, `resumed from ${s.resumedFrom.runId} step ${s.resumedFrom.step}`) : null,
        s.inputs?.length ? el('div', { class: 'muted' }, 'reads ', el('span', { class: 'mono' }, s.inputs.join(', '))) : null,
        s.output ? el('div', { class: 'muted' }, 'wrote ', el('span', { class: 'mono' }, Object.values(s.output).filter((x) => typeof x === 'string').join(', '))) : null,
        s.error ? el('div', { class: 'error' }, s.error) : null))),
    v.current?.run ? el('p', {}, 'Running now: ', runLink(v.current.run.runId)) : null,
  );
}
