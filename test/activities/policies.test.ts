/**
 * The models a worker holds for data-stage shards: nothing a shard holds is freed under it, the
 * least recently used unheld model goes first when more than `max` are loaded, and a model no
 * shard has used for `idleMs` is freed (its memory given back).
 */
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ResidentPolicies } from '../../activities/pipeline/policies.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { root } from '../e2e/helpers.js';

// Two URIs of one small model folder: two entries, each its own loaded model.
const store = { fetchInput: async () => path.join(root, 'models/fixtures/tiny-llama') } as unknown as RunStorePort;

describe('ResidentPolicies', () => {
  it('frees the least recently used unheld model past max, never one a shard holds', async () => {
    const policies = new ResidentPolicies(1, 60_000);
    const a = policies.scope(), b = policies.scope();
    const m1 = (await a.get(store, 'm1')).model;
    const freed1 = vi.spyOn(m1, 'dispose');
    const m2 = (await b.get(store, 'm2')).model;
    expect(policies.size).toBe(2); // over max, but both are held
    expect(freed1).not.toHaveBeenCalled();
    a.release();
    await new Promise((r) => setImmediate(r));
    expect(policies.size).toBe(1);
    expect(freed1).toHaveBeenCalledTimes(1);
    expect(await b.get(store, 'm2')).toMatchObject({ model: m2 }); // still the loaded one
    b.release();
    await policies.dispose();
  });

  it('frees a model no shard used for idleMs; a shard that comes back in time keeps it', async () => {
    const policies = new ResidentPolicies(3, 150);
    const s1 = policies.scope();
    const m = (await s1.get(store, 'm')).model;
    const freed = vi.spyOn(m, 'dispose');
    s1.release();
    await new Promise((r) => setTimeout(r, 50));
    const s2 = policies.scope();
    expect((await s2.get(store, 'm')).model).toBe(m); // reused, the idle clock stopped
    await new Promise((r) => setTimeout(r, 250));
    expect(freed).not.toHaveBeenCalled();
    s2.release();
    await new Promise((r) => setTimeout(r, 250));
    expect(policies.size).toBe(0);
    expect(freed).toHaveBeenCalledTimes(1);
  });
});
