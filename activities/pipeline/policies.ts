/**
 * Causal LMs a worker holds for pipeline data stages (the policy that samples, the SFT model that
 * scores, the judge), by folder URI, so that the shards of one stage pay the load once. A shard
 * holds what it uses through a scope, and nothing a shard holds is freed under it. At most `max`
 * stay loaded when no shard needs more (the least recently used unheld one is freed first), and
 * one that no shard has used for `idleMs` is freed: the memory is given back.
 */
import type { CausalLM } from '../../models/causal-lm.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';
import type { RunStorePort } from '../../store/run-store-port.js';

export interface ResidentPolicy {
  model: CausalLM;
  tok: Tokenizer;
  dir: string;
}

/** What a task calls: get a model by URI, held until the scope (the shard) ends. */
export interface PolicySource {
  get(store: RunStorePort, uri: string): Promise<ResidentPolicy>;
}

interface Entry {
  loaded: Promise<ResidentPolicy>;
  /** Scopes holding it now. */
  holders: number;
  idleTimer: NodeJS.Timeout | null;
}

export class ResidentPolicies {
  private readonly held = new Map<string, Entry>(); // insertion order = least recently used first

  constructor(private readonly max = 3, private readonly idleMs = 120_000) {}

  /** Models loaded now (for tests and the worker's status). */
  get size(): number {
    return this.held.size;
  }

  /** A shard's view: every model it gets stays loaded until release(). */
  scope(): PolicySource & { release(): void } {
    const mine: string[] = [];
    return {
      get: (store, uri) => {
        const e = this.entry(store, uri);
        e.holders++;
        mine.push(uri);
        this.evict(); // after holding it: the model being got is never the one freed
        return e.loaded;
      },
      release: () => {
        for (const uri of mine.splice(0)) this.unhold(uri);
      },
    };
  }

  private entry(store: RunStorePort, uri: string): Entry {
    let e = this.held.get(uri);
    if (e) this.held.delete(uri);
    else {
      const loaded = (async () => {
        const dir = await store.fetchInput(uri);
        return { model: await loadPretrained(dir), tok: Tokenizer.fromDir(dir), dir };
      })();
      e = { loaded, holders: 0, idleTimer: null };
      loaded.catch(() => this.held.get(uri) === e && this.held.delete(uri));
    }
    if (e.idleTimer) clearTimeout(e.idleTimer);
    e.idleTimer = null;
    this.held.set(uri, e);
    return e;
  }

  private unhold(uri: string): void {
    const e = this.held.get(uri);
    if (!e || --e.holders > 0) return;
    this.evict();
    if (this.held.get(uri) !== e) return;
    e.idleTimer = setTimeout(() => {
      if (this.held.get(uri) === e && e.holders === 0) this.free(uri, e);
    }, this.idleMs);
    e.idleTimer.unref();
  }

  /** Over `max`: free the least recently used models no shard holds. */
  private evict(): void {
    for (const [uri, e] of this.held) {
      if (this.held.size <= this.max) return;
      if (e.holders === 0) this.free(uri, e);
    }
  }

  private free(uri: string, e: Entry): void {
    this.held.delete(uri);
    if (e.idleTimer) clearTimeout(e.idleTimer);
    void e.loaded.then((x) => x.model.dispose(), () => undefined);
  }

  async dispose(): Promise<void> {
    const all = [...this.held.entries()];
    this.held.clear();
    for (const [, e] of all) {
      if (e.idleTimer) clearTimeout(e.idleTimer);
      (await e.loaded.catch(() => null))?.model.dispose();
    }
  }
}
