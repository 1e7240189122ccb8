/**
 * Which parameter is split on which axis under tensor parallel, per family (Megatron's layout on
 * Hugging Face names), and the host-side cutting and gluing that load a whole checkpoint into a
 * rank's shard and save one whole checkpoint from every rank's shard, whatever the layout.
 *
 * Column-parallel projections split their output features, row-parallel ones their input
 * features, the embedding (and the LM head) their vocabulary rows. GPT-2's fused c_attn holds
 * q | k | v along its output axis: each of the three parts splits by heads (`parts: 3`).
 * Everything else (norms, positions, row-parallel biases) is whole on every rank.
 */
import { shardRange } from '../kernels/distributed/tensor-parallel.js';
import type { TensorParallel } from '../kernels/distributed/tensor-parallel.js';
import { tensor } from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import type { CausalLM } from './causal-lm.js';
import type { ModelConfig } from './config.js';

export interface ShardSpec {
  axis: number;
  /** Equal parts laid end to end along the axis, each split over the ranks (3 for q | k | v). */
  parts: number;
}

const LLAMA: [RegExp, ShardSpec][] = [
  [/\.self_attn\.[qkv]_proj\.(weight|bias)$/, { axis: 0, parts: 1 }],
  [/\.mlp\.(gate|up)_proj\.(weight|bias)$/, { axis: 0, parts: 1 }],
  [/\.(self_attn\.o_proj|mlp\.down_proj)\.weight$/, { axis: 1, parts: 1 }],
  [/^(model\.embed_tokens|lm_head)\.weight$/, { axis: 0, parts: 1 }],
];

const GPT2: [RegExp, ShardSpec][] = [
  [/\.attn\.c_attn\.weight$/, { axis: 1, parts: 3 }],
  [/\.attn\.c_attn\.bias$/, { axis: 0, parts: 3 }],
  [/\.(attn|mlp)\.c_proj\.weight$/, { axis: 0, parts: 1 }],
  [/\.mlp\.c_fc\.weight$/, { axis: 1, parts: 1 }],
  [/\.mlp\.c_fc\.bias$/, { axis: 0, parts: 1 }],
  [/^transformer\.wte\.weight$/, { axis: 0, parts: 1 }],
];

/** How parameter `name` splits, or null when every rank holds it whole. */
export function tensorParallelSpec(family: ModelConfig['family'], name: string): ShardSpec | null {
  for (const [re, spec] of family === 'gpt2' ? GPT2 : LLAMA) if (re.test(name)) return spec;
  return null;
}

interface HostTensor {
  shape: readonly number[];
  data: ArrayLike<number>;
}

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** The index ranges along the axis that rank r holds, one per part, in the whole tensor's coordinates. */
function rankRanges(length: number, spec: ShardSpec, rank: number, world: number): [number, number][] {
  const part = length / spec.parts;
  return Array.from({ length: spec.parts }, (_, p) => {
    const [from, to] = shardRange(part, rank, world);
    return [p * part + from, p * part + to];
  });
}

/** Rank r's shard of a whole tensor. */
export function shardTensor(whole: HostTensor, spec: ShardSpec, rank: number, world: number): { shape: number[]; data: Float32Array } {
  const { axis } = spec;
  const outer = prod(whole.shape.slice(0, axis)), len = whole.shape[axis], inner = prod(whole.shape.slice(axis + 1));
  const ranges = rankRanges(len, spec, rank, world);
  const localLen = ranges.reduce((s, [a, b]) => s + b - a, 0);
  const out = new Float32Array(outer * localLen * inner);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const [a, b] of ranges) {
      const start = (o * len + a) * inner, n = (b - a) * inner;
      for (let j = 0; j < n; j++) out[k++] = whole.data[start + j];
    }
  }
  const shape = [...whole.shape];
  shape[axis] = localLen;
  return { shape, data: out };
}

/** The whole tensor from every rank's shard (shardTensor's inverse). */
export function unshardTensor(shards: readonly HostTensor[], spec: ShardSpec, wholeLength: number): { shape: number[]; data: Float32Array } {
  const { axis } = spec;
  const world = shards.length;
  const shape = [...shards[0].shape];
  shape[axis] = wholeLength;
  const outer = prod(shape.slice(0, axis)), inner = prod(shape.slice(axis + 1));
  const out = new Float32Array(prod(shape));
  for (let r = 0; r < world; r++) {
    const ranges = rankRanges(wholeLength, spec, r, world);
    let k = 0;
    for (let o = 0; o < outer; o++) {
      for (const [a, b] of ranges) {
        const start = (o * wholeLength + a) * inner, n = (b - a) * inner;
        for (let j = 0; j < n; j++) out[start + j] = shards[r].data[k++];
      }
    }
  }
  return { shape, data: out };
}

/** A whole checkpoint's tensors cut to rank r's shard (whole tensors pass through). */
export function shardState<T extends HostTensor>(family: ModelConfig['family'], state: ReadonlyMap<string, T>, rank: number, world: number): Map<string, HostTensor> {
  return new Map([...state].map(([name, t]) => {
    const spec = tensorParallelSpec(family, name);
    return [name, spec ? shardTensor(t, spec, rank, world) : t];
  }));
}

/** A split tensor whole on every rank: the shards padded to the largest, all-gathered, cut back and glued. */
export async function gatherSplit(tp: TensorParallel, local: { shape: readonly number[]; data: ArrayLike<number> }, spec: ShardSpec, wholeLength: number): Promise<{ shape: number[]; data: Float32Array }> {
  const rowOf = prod(local.shape) / local.shape[spec.axis];
  const axisLengths = Array.from({ length: tp.world }, (_, r) => rankRanges(wholeLength, spec, r, tp.world).reduce((s, [a, b]) => s + b - a, 0));
  const largest = Math.max(...axisLengths) * rowOf;
  const padded = new Float32Array(largest);
  padded.set(local.data);
  const t = tensor(padded, [largest]); // [largest shard]
  const all = await tp.group.allGather(t); // [world, largest]
  const flat = (await all.data()) as Float32Array;
  t.dispose();
  all.dispose();
  const shards = axisLengths.map((len, r) => {
    const shape = [...local.shape];
    shape[spec.axis] = len;
    return { shape, data: flat.subarray(r * largest, r * largest + len * rowOf) };
  });
  return unshardTensor(shards, spec, wholeLength);
}

/**
 * Every parameter (or, with `of`, every parameter's gradient) whole, on every rank, so that
 * rank 0 can save one ordinary checkpoint. The whole length of each split axis is the sum of the
 * ranks' parts, gathered first in one call.
 */
export async function gatherTensorParallelState(
  model: CausalLM, tp: TensorParallel, of: (p: Tensor) => { data(): Promise<ArrayLike<number>> } = (p) => p,
): Promise<Map<string, { shape: number[]; data: ArrayLike<number> }>> {
  const named = model.namedParameters();
  const family = model.config.family;
  const split = named.filter(([n]) => tensorParallelSpec(family, n));
  const lengths = tensor(split.map(([n, p]) => p.shape[tensorParallelSpec(family, n)!.axis]), [split.length], { dtype: 'i32' }); // [splits]
  const allLengths = await tp.group.allGather(lengths); // [world, splits]
  const byRank = await allLengths.data();
  lengths.dispose();
  allLengths.dispose();
  const out = new Map<string, { shape: number[]; data: ArrayLike<number> }>();
  let s = 0;
  for (const [name, p] of named) {
    const spec = tensorParallelSpec(family, name);
    const local = { shape: [...p.shape], data: await of(p).data() };
    if (!spec) {
      out.set(name, local);
      continue;
    }
    let whole = 0;
    for (let r = 0; r < tp.world; r++) whole += byRank[r * split.length + s];
    s++;
    out.set(name, await gatherSplit(tp, local, spec, whole));
  }
  return out;
}
