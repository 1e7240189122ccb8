/**
 * ProcessGroup: the collectives that data, tensor and pipeline parallel training are built on
 * (DESIGN §9), the same calls whatever moves the bytes. Every call is asynchronous and queued
 * behind the kernels that produce its inputs, so the event loop (and an activity's heartbeats)
 * stays live while a rank waits for the others.
 *
 * Tensors are contiguous and whole (a view shares its full storage). `allReduce`, `broadcast` and
 * `recv` write into the tensor's storage in place; they are for buffers outside the autograd tape
 * (gradient buckets, parameters, activations received), never for a tensor a backward still needs.
 */
import type { Tensor } from '../tensor.js';

export type ReduceOp = 'sum' | 'max';

export interface AllReduceOptions {
  /**
   * Run on the group's communication stream: it still waits for the kernels queued before it,
   * but those queued after it run concurrently (gradient buckets during the backward). The caller
   * must not read, write or free t until the Promise resolves.
   */
  overlap?: boolean;
}

export interface ProcessGroup {
  readonly backend: 'shm' | 'nccl';
  readonly rank: number;
  readonly world: number;
  /** Every rank's t reduced element-wise, in rank order (deterministic), written into t. */
  allReduce(t: Tensor, op?: ReduceOp, opts?: AllReduceOptions): Promise<void>;
  /** [world, ...t.shape]: rank r's t at index r. */
  allGather(t: Tensor): Promise<Tensor>;
  /** t is [world·n, ...]; returns [n, ...], this rank's part of the element-wise reduction. */
  reduceScatter(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  /** root's t, written into t on every other rank. */
  broadcast(t: Tensor, root: number): Promise<void>;
  /** Point to point; a send of at most one mailbox (1 MiB by default) completes without the receiver. */
  send(t: Tensor, dst: number): Promise<void>;
  recv(t: Tensor, src: number): Promise<void>;
  /** send(out, dst) and recv(into, src) at once, never blocked by its own send (pipeline stages exchanging both ways). */
  sendRecv(out: Tensor, dst: number, into: Tensor, src: number): Promise<void>;
  barrier(): Promise<void>;
  /** Waits for queued calls, then releases the group; later calls fail. */
  close(): Promise<void>;
}

/** What each rank of a group needs to join it: handed out by whoever places the gang. */
export interface Rendezvous {
  /** Fresh per gang attempt, so a restarted gang never meets a dead one's segment. */
  name: string;
  world: number;
  /** How long a rank waits for the others, at rendezvous and at every collective. */
  timeoutMs: number;
}

/** The single-process reference of each reduction: what every rank must get, in rank order. */
export function referenceReduce(inputs: readonly ArrayLike<number>[], op: ReduceOp): Float32Array {
  const out = Float32Array.from(inputs[0]);
  for (let k = 1; k < inputs.length; k++) {
    const x = inputs[k];
    for (let j = 0; j < out.length; j++) {
      if (op === 'sum') out[j] = Math.fround(out[j] + x[j]);
      else out[j] = Number.isNaN(out[j]) || out[j] >= x[j] ? out[j] : x[j];
    }
  }
  return out;
}
