/**
 * The NCCL ProcessGroup: ranks are processes with one GPU each, tensors live on the CUDA backend,
 * and every collective is queued on the backend's stream behind the kernels that produce its
 * inputs (native/src/cuda/bind_nccl.cc). The rendezvous is NCCL's: rank 0 makes a unique id
 * (`ncclUniqueId`, 128 bytes), which travels out of band, in a workflow payload, to the others.
 * Waits have the rendezvous' deadline: a rank that never arrives is an error, never a hang.
 *
 * Without NCCL or a GPU, every call is a NoGpuError that says which is missing.
 */
import { ShapeError } from '../errors.js';
import { CUDA_HOST_TYPES, cudaAddon, cudaCall } from '../cuda-probe.js';
import type { CudaAddon } from '../cuda-probe.js';
import type { CudaStorage } from '../cuda-engine.js';
import { getBackend } from '../engine.js';
import { Tensor } from '../tensor.js';
import type { AllReduceOptions, ProcessGroup, ReduceOp, Rendezvous } from './process-group.js';

/** Rank 0's half of the rendezvous: the id every rank passes to openNcclGroup. */
export function ncclUniqueId(): Uint8Array {
  return cudaCall(() => cudaAddon().ncclUniqueId());
}

/** Joins the communicator of `id`; resolves once every rank has (or fails at the deadline). */
export async function openNcclGroup(rendezvous: Rendezvous & { ncclId: Uint8Array }, rank: number): Promise<ProcessGroup> {
  const a = cudaAddon();
  if (rendezvous.ncclId.length !== 128) throw new ShapeError(`openNcclGroup: the NCCL unique id has 128 bytes, got ${rendezvous.ncclId.length}`);
  const id = await cudaCall(() => a.ncclGroupOpen(rendezvous.ncclId, rank, rendezvous.world, rendezvous.timeoutMs));
  return new NcclProcessGroup(a, id, rank, rendezvous.world);
}

class NcclProcessGroup implements ProcessGroup {
  readonly backend = 'nccl' as const;

  constructor(private readonly a: CudaAddon, private readonly id: number, readonly rank: number, readonly world: number) {}

  async allReduce(t: Tensor, op: ReduceOp = 'sum', _opts: AllReduceOptions = {}): Promise<void> {
    const p = ptrOf(t, 'allReduce');
    await this.call('allReduce', p, p, t.numel, t, op);
  }

  async allGather(t: Tensor): Promise<Tensor> {
    const out = empty(t, [this.world, ...t.shape]); // [world, ...t.shape]
    await this.call('allGather', ptrOf(t, 'allGather'), ptrOf(out, 'allGather'), t.numel, t, 0);
    return out;
  }

  async reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    const [rows, ...rest] = t.shape;
    if (rows === undefined || rows % this.world !== 0) throw new ShapeError(`reduceScatter: the first dimension (${rows}) must divide by the world size ${this.world}`);
    const out = empty(t, [rows / this.world, ...rest]); // [rows / world, ...rest]
    await this.call('reduceScatter', ptrOf(t, 'reduceScatter'), ptrOf(out, 'reduceScatter'), out.numel, t, op);
    return out;
  }

  async broadcast(t: Tensor, root: number): Promise<void> {
    const p = ptrOf(t, 'broadcast');
    await this.call('broadcast', p, p, t.numel, t, root);
  }

  async send(t: Tensor, dst: number): Promise<void> {
    await this.call('send', ptrOf(t, 'send'), 0, t.numel, t, dst);
  }

  async recv(t: Tensor, src: number): Promise<void> {
    await this.call('recv', 0, ptrOf(t, 'recv'), t.numel, t, src);
  }

  async sendRecv(out: Tensor, dst: number, into: Tensor, src: number): Promise<void> {
    await cudaCall(() => this.a.ncclSendRecv(this.id, ptrOf(out, 'sendRecv'), out.numel, dst, ptrOf(into, 'sendRecv'), into.numel, src, dtypeCode(out)));
  }

  /** An all-reduce of one element: every rank has arrived when it completes. */
  async barrier(): Promise<void> {
    const cuda = getBackend('cuda');
    const one = new Tensor([1], 'f32', cuda, cuda.alloc('f32', 1)); // [1] values unused
    await this.allReduce(one);
    one.dispose();
  }

  async close(): Promise<void> {
    cudaCall(() => this.a.ncclGroupClose(this.id));
  }

  private call(kind: string, send: number, recv: number, count: number, like: Tensor, arg: string | number): Promise<number> {
    return cudaCall(() => this.a.ncclCollective(this.id, kind, send, recv, count, dtypeCode(like), arg));
  }
}

function ptrOf(t: Tensor, op: string): number {
  if (t.backend.name !== 'cuda') throw new ShapeError(`${op}: the NCCL group moves CUDA tensors, got ${t.backend.name}`);
  return (t.storageFor(op) as CudaStorage).ptr;
}

function dtypeCode(t: Tensor): number {
  if (t.dtype === 'f32' || t.dtype === 'bf16' || t.dtype === 'i32') return CUDA_HOST_TYPES[t.dtype];
  throw new ShapeError(`NCCL group: dtype ${t.dtype} is not supported (f32, bf16, i32)`);
}

function empty(like: Tensor, shape: number[]): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, like.dtype, like.backend, like.backend.alloc(like.dtype, numel));
}
