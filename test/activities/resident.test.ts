/** ResidentRuns: at most `capacity` runs stay resident, least recently used evicted first, and every eviction frees the model. */
import { describe, expect, it } from 'vitest';
import { ResidentRuns } from '../../activities/train.js';
import { createActivities } from '../../activities/index.js';

function fakeResident(freed: string[], name: string) {
  const closable = { count: 0, getMany: async () => [], close: async () => {} };
  return {
    state: { step: 0, lora: null, model: { dispose: () => freed.push(`${name}.model`) }, opt: { dispose: () => freed.push(`${name}.opt`) } },
    lineage: null, train: closable, valid: closable, pre: null,
  } as unknown as Parameters<ResidentRuns['set']>[1];
}

describe('ResidentRuns', () => {
  it('keeps the most recently used runs up to its capacity and frees the others', () => {
    const freed: string[] = [];
    const runs = new ResidentRuns(2);
    runs.set('a', fakeResident(freed, 'a'));
    runs.set('b', fakeResident(freed, 'b'));
    runs.get('a'); // a is now the most recently used
    runs.set('c', fakeResident(freed, 'c'));
    expect(freed).toEqual(['b.model', 'b.opt']);
    expect([runs.get('a'), runs.get('b'), runs.get('c')].map(Boolean)).toEqual([true, false, true]);
    runs.drop('a');
    runs.drop('c');
    expect(runs.size).toBe(0);
    expect(freed).toEqual(['b.model', 'b.opt', 'a.model', 'a.opt', 'c.model', 'c.opt']);
  });
});

describe('placeRun', () => {
  const store = {} as Parameters<typeof createActivities>[0]['store'];

  it('a full worker takes back the slot of a run whose workflow has closed (terminated runs never release), and only that', async () => {
    const runs = new ResidentRuns();
    const closed = new Set<string>();
    const acts = createActivities({ store, workerQueue: 'w1', runs, slots: 1, isWorkflowClosed: async (id) => closed.has(id) });
    expect(await acts.placeRun({ runId: 'a' })).toBe('w1');
    expect(await acts.placeRun({ runId: 'a' })).toBe('w1'); // idempotent per run
    await expect(acts.placeRun({ runId: 'b' })).rejects.toThrow('worker w1 has no free slot (1 of 1 in use, by a)');
    closed.add('a'); // a was terminated: its workflow is gone, its slot is not
    expect(await acts.placeRun({ runId: 'b' })).toBe('w1');
    expect(runs.placedRuns).toEqual([{ runId: 'b', owner: 'b' }]);
  });

  it('a slot belongs to the workflow that placed it: an online run\'s critic keeps its slot while the run\'s workflow is open', async () => {
    const runs = new ResidentRuns();
    const asked: string[] = [];
    const acts = createActivities({ store, workerQueue: 'w1', runs, slots: 1, isWorkflowClosed: async (id) => (asked.push(id), id !== 'ppo-1') });
    await acts.placeRun({ runId: 'ppo-1-critic', owner: 'ppo-1' }); // no workflow is named ppo-1-critic
    await expect(acts.placeRun({ runId: 'b' })).rejects.toThrow(/no free slot \(1 of 1 in use, by ppo-1-critic\)/);
    expect(asked).toEqual(['ppo-1']);
  });

  it('a run whose state is unknown (Temporal unreachable) keeps its slot', async () => {
    const runs = new ResidentRuns();
    const acts = createActivities({ store, workerQueue: 'w1', runs, slots: 1, isWorkflowClosed: async () => false });
    await acts.placeRun({ runId: 'a' });
    await expect(acts.placeRun({ runId: 'b' })).rejects.toThrow(/no free slot/);
  });
});
