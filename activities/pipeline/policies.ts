/**
 * Causal LMs a worker holds for pipeline data stages (the policy that samples, the SFT model that
 * scores, the judge), by folder URI, so that the shards of one stage pay the load once. At most
 * `max` stay loaded; the least recently used is freed first (memory is given back).
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

export class ResidentPolicies {
  private readonly held = new Map<string, Promise<ResidentPolicy>>(); // insertion order = least recently used first

  constructor(private readonly max = 3) {}

  get(store: RunStorePort, uri: string): Promise<ResidentPolicy> {
    let p = this.held.get(uri);
    if (p) this.held.delete(uri);
    else {
      p = (async () => {
        const dir = await store.fetchInput(uri);
        return { model: await loadPretrained(dir), tok: Tokenizer.fromDir(dir), dir };
      })();
      p.catch(() => this.held.delete(uri));
    }
    this.held.set(uri, p);
    while (this.held.size > this.max) {
      const [oldest, o] = this.held.entries().next().value!;
      this.held.delete(oldest);
      void o.then((x) => x.model.dispose(), () => undefined);
    }
    return p;
  }

  async dispose(): Promise<void> {
    const all = [...this.held.values()];
    this.held.clear();
    for (const p of all) (await p.catch(() => null))?.model.dispose();
  }
}
