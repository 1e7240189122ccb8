/**
 * The shared-memory ProcessGroup: ranks are processes on one host, the segment is POSIX shared
 * memory mapped by the native addon (native/src/shm_group.cc), and data moves between tensor
 * storages and the segment in native code. Reductions sum in rank order, so results are the same
 * bits on every rank and in every run, whatever the timing.
 */
import { ShapeError } from '../errors.js';
import { nativeGroupCalls, storageHandle, type NativeGroupCalls } from '../native-backend.js';
import { Tensor } from '../tensor.js';
import type { AllReduceOptions, ProcessGroup, ReduceOp, Rendezvous } from './process-group.js';

export interface ShmOptions {
  /** Bytes each rank stages per step of a collective (default 4 MiB; each rank maps twice this). */
  slotBytes?: number;
  /** Bytes per send/recv mailbox, one per ordered pair of ranks (default 1 MiB). */
  mailboxBytes?: number;
}

/** Joins the group (rank 0 creates it); resolves once every rank has arrived. */
export async function openShmGroup(rendezvous: Rendezvous, rank: number, opts: ShmOptions = {}): Promise<ProcessGroup> {
  const calls = nativeGroupCalls();
  const { name, world, timeoutMs } = rendezvous;
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) throw new ShapeError(`process group name '${name}': use letters, digits, '.', '_' and '-' only`);
  const id = await calls.shmGroupOpen(name, rank, world, opts.slotBytes ?? 4 << 20, opts.mailboxBytes ?? 1 << 20, timeoutMs);
  return new ShmProcessGroup(calls, id, rank, world);
}

class ShmProcessGroup implements ProcessGroup {
  readonly backend = 'shm' as const;

  constructor(
    private readonly calls: NativeGroupCalls,
    private readonly id: number,
    readonly rank: number,
    readonly world: number,
  ) {}

  async allReduce(t: Tensor, op: ReduceOp = 'sum', opts: AllReduceOptions = {}): Promise<void> {
    await this.calls.shmGroupAllReduce(this.id, handleOf(t, 'allReduce'), op, opts.overlap ?? false);
  }

  async allGather(t: Tensor): Promise<Tensor> {
    const out = empty(t, [this.world, ...t.shape]); // [world, ...t.shape]
    await this.calls.shmGroupAllGather(this.id, handleOf(t, 'allGather'), handleOf(out, 'allGather'));
    return out;
  }

  async reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    const [rows, ...rest] = t.shape;
    if (rows === undefined || rows % this.world !== 0)
      throw new ShapeError(`reduceScatter: the first dimension (${rows}) must divide by the world size ${this.world}`);
    const out = empty(t, [rows / this.world, ...rest]); // [rows / world, ...rest]
    await this.calls.shmGroupReduceScatter(this.id, handleOf(t, 'reduceScatter'), handleOf(out, 'reduceScatter'), op);
    return out;
  }

  async broadcast(t: Tensor, root: number): Promise<void> {
    await this.calls.shmGroupBroadcast(this.id, handleOf(t, 'broadcast'), root);
  }

  async send(t: Tensor, dst: number): Promise<void> {
    await this.calls.shmGroupSend(this.id, handleOf(t, 'send'), dst);
  }

  async recv(t: Tensor, src: number): Promise<void> {
    await this.calls.shmGroupRecv(this.id, handleOf(t, 'recv'), src);
  }

  async sendRecv(out: Tensor, dst: number, into: Tensor, src: number): Promise<void> {
    await this.calls.shmGroupSendRecv(this.id, handleOf(out, 'sendRecv'), dst, handleOf(into, 'sendRecv'), src);
  }

  async barrier(): Promise<void> {
    await this.calls.shmGroupBarrier(this.id);
  }

  async close(): Promise<void> {
    await this.calls.shmGroupClose(this.id);
  }
}

function handleOf(t: Tensor, op: string): number {
  if (t.backend.name !== 'native') throw new ShapeError(`${op}: the shared-memory group moves native (cpu) tensors, got ${t.backend.name}`);
  return storageHandle(t.storageFor(op));
}

function empty(like: Tensor, shape: number[]): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, like.dtype, like.backend, like.backend.alloc(like.dtype, numel));
}
