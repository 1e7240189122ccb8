/**
 * The NCCL process group. Without a GPU (CI), every way in fails with a NoGpuError that names
 * what is missing, and nothing hangs; with one GPU (bench/device.sh), a world of one runs every
 * collective against the reference. Multi-GPU equivalence needs several GPUs and is unverified
 * here. The hand-declared NCCL ABI is checked against nccl.h by cuda-compile.test.ts where the
 * headers are installed.
 */
import { describe, expect, it } from 'vitest';
import { ncclUniqueId, openNcclGroup, referenceReduce } from '../../../kernels/distributed/index.js';
import { getBackend, NoGpuError, tensor } from '../../../kernels/index.js';
import { probe } from '../../../kernels/cuda-probe.js';

const report = probe();
const usable = report.gpuAvailable && report.ncclVersion !== null;

describe.skipIf(usable)('NCCL group without a GPU', () => {
  it('reports what is missing, at once', async () => {
    expect(() => ncclUniqueId()).toThrow(NoGpuError);
    await expect(openNcclGroup({ name: 'x', world: 2, timeoutMs: 1000, ncclId: new Uint8Array(128) }, 0)).rejects.toThrow(NoGpuError);
    try {
      ncclUniqueId();
    } catch (e) {
      expect((e as Error).message).toMatch(/NCCL is not available|GPU|CUDA|libcuda|driver/i);
    }
  });
});

describe.skipIf(!usable)('NCCL group on one GPU', () => {
  it('a world of one: every collective gives the reference', async () => {
    const cuda = getBackend('cuda');
    const g = await openNcclGroup({ name: 'one', world: 1, timeoutMs: 30_000, ncclId: ncclUniqueId() }, 0);
    const x = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i));
    const t = tensor(x, [1001], { backend: cuda });
    await g.allReduce(t);
    expect(Array.from(await t.data())).toEqual(Array.from(referenceReduce([x], 'sum')));
    const all = await g.allGather(t);
    expect(all.shape).toEqual([1, 1001]);
    await g.broadcast(t, 0);
    await g.barrier();
    await g.close();
  });
});
