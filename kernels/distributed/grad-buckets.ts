/**
 * Data-parallel gradient reduction in buckets, overlapped with the backward (PyTorch DDP's
 * design, Li et al. 2020, "PyTorch Distributed", §3.2). Parameters are grouped in reverse order,
 * the order in which a backward finishes their gradients, into flat buckets of at most
 * `bucketBytes`. Once armed (before the last micro-batch's backward), each parameter's
 * post-accumulate hook counts it in; when a bucket is complete its gradients are copied into the
 * bucket and the bucket is summed over the group on the communication stream while the backward
 * of the earlier layers goes on. `reduce()` waits for every bucket and copies the sums back.
 *
 * The sum is rank-ordered, so with one micro-batch per rank, DP=N gives the same bits as DP=1
 * accumulating the same N micro-batches (see README.md).
 */
import { ShapeError } from '../errors.js';
import { alloc, kernel } from '../op.js';
import { Tensor, noGrad } from '../tensor.js';
import type { ProcessGroup } from './process-group.js';

export interface GradBucketOptions {
  /** Largest bucket in bytes (default 4 MiB; a larger parameter gets a bucket of its own). */
  bucketBytes?: number;
}

interface Bucket {
  params: Tensor[];
  /** Element offset of each parameter in the flat buffer. */
  offsets: number[];
  flat: Tensor; // [numel] f32, kept across steps
  ready: number;
  inFlight: Promise<void> | null;
}

export class GradBuckets {
  readonly buckets: readonly Bucket[];
  private readonly bucketOf = new Map<Tensor, Bucket>();
  private armed = false;

  constructor(private readonly group: ProcessGroup, params: readonly Tensor[], opts: GradBucketOptions = {}) {
    const limit = Math.max(1, Math.floor((opts.bucketBytes ?? 4 << 20) / 4));
    const buckets: Bucket[] = [];
    let open: { params: Tensor[]; offsets: number[]; numel: number } | null = null;
    const close = () => {
      if (!open) return;
      const flat = alloc(open.params[0].backend, [open.numel], 'f32').keep(); // [numel]
      buckets.push({ params: open.params, offsets: open.offsets, flat, ready: 0, inFlight: null });
      open = null;
    };
    for (const p of [...params].reverse()) {
      if (p.dtype !== 'f32') throw new ShapeError(`GradBuckets: data parallel reduces f32 gradients, parameter #${p.id} is ${p.dtype}`);
      if (open && open.numel + p.numel > limit) close();
      open ??= { params: [], offsets: [], numel: 0 };
      open.params.push(p);
      open.offsets.push(open.numel);
      open.numel += p.numel;
    }
    close();
    this.buckets = buckets;
    for (const b of buckets) for (const p of b.params) this.bucketOf.set(p, b);
  }

  /** Call before the backward that completes this step's gradients (the last micro-batch's). */
  arm(): void {
    if (this.armed) return;
    this.armed = true;
    for (const [p, b] of this.bucketOf) {
      p.onGradReady = () => {
        if (b.inFlight) {
          throw new ShapeError('data parallel: a parameter got a second gradient after its bucket was sent; run one backward pass per micro-batch');
        }
        if (++b.ready === b.params.length) this.launch(b);
      };
    }
  }

  /** Sends the buckets the backward did not complete (unused parameters), waits for all, writes the sums into .grad. */
  async reduce(): Promise<void> {
    for (const b of this.buckets) if (!b.inFlight) this.launch(b);
    this.disarm();
    const failed = (await this.settle()).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    noGrad(() => {
      for (const b of this.buckets) {
        const backend = b.flat.backend;
        b.params.forEach((p, i) => {
          if (!p.grad || p.grad.isDisposed) p.grad = alloc(backend, p.shape, 'f32').keep(); // [...p.shape]
          copyRange(b.flat, b.offsets[i], p.grad, 0, p.numel);
        });
      }
    });
  }

  /** Drops the hooks. */
  disarm(): void {
    this.armed = false;
    for (const b of this.buckets) b.ready = 0;
    for (const p of this.bucketOf.keys()) p.onGradReady = null;
  }

  /** After a failed step: waits for the buckets still in flight (never leaves one writing), then starts clean. */
  async abandon(): Promise<void> {
    this.disarm();
    await this.settle();
  }

  /** Frees the buckets, once those in flight have finished (a free never races the communication stream). */
  dispose(): void {
    this.disarm();
    void this.settle().then(() => {
      for (const b of this.buckets) b.flat.dispose();
    });
  }

  /** Waits for every bucket in flight; each ends idle whatever its outcome. */
  private async settle(): Promise<PromiseSettledResult<void>[]> {
    const pending = this.buckets.map((b) => b.inFlight).filter((p): p is Promise<void> => p !== null);
    const results = await Promise.allSettled(pending);
    for (const b of this.buckets) b.inFlight = null;
    return results;
  }

  private launch(b: Bucket): void {
    b.params.forEach((p, i) => {
      if (p.grad && !p.grad.isDisposed) copyRange(p.grad, 0, b.flat, b.offsets[i], p.numel);
      else zeroRange(b.flat, b.offsets[i], p.numel);
    });
    const sent = this.group.allReduce(b.flat, 'sum', { overlap: true });
    sent.catch(() => undefined); // handled: reduce() or abandon() reports or drops it
    b.inFlight = sent;
  }
}

/** dst[dstAt … dstAt+n) = src[srcAt … srcAt+n), queued on the stream. */
export function copyRange(src: Tensor, srcAt: number, dst: Tensor, dstAt: number, n: number): void {
  kernel(src.backend, 'copyBlock', 'copyRange')(src.storageFor('copyRange'), dst.storageFor('copyRange'), 1, n, 1, src.numel, srcAt, dst.numel, dstAt);
}

/** A parameter without a gradient on this rank contributes zeros (another rank may have one). */
function zeroRange(flat: Tensor, at: number, n: number): void {
  const zeros = alloc(flat.backend, [n], 'f32'); // [n]
  kernel(flat.backend, 'fill', 'GradBuckets')(zeros.storageFor('GradBuckets'), n, 0);
  copyRange(zeros, 0, flat, at, n);
  zeros.dispose();
}
