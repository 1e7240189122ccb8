/** AdamW against one step computed by hand, and global gradient-norm clipping. */
import { describe, expect, it } from 'vitest';
import { AdamW, clipGradNorm, tensor } from '../../kernels/index.js';
import { backendsUnderTest, onBackend } from './harness.js';

describe.each(backendsUnderTest())('optimizer on $name', (b) => {
  const { backend } = b;
  onBackend(b);
  it('one AdamW step matches the hand computation', () => {
    // p = [1, −2], g = [0.5, 0.1], lr 0.1, β = (0.9, 0.999), eps 1e-8, wd 0.01, step 1:
    // decay: p ← p·(1 − 0.001) = [0.999, −1.998]
    // m = 0.1·g = [0.05, 0.01]; v = 0.001·g² = [2.5e-4, 1e-5]
    // step size lr/(1 − 0.9) = 1; denominator √v/√0.001 + eps = |g| + 1e-8 = [0.50000001, 0.10000001]
    // p ← p − m/denominator = [0.999 − 0.099999998, −1.998 − 0.0999999900] = [0.899000002, −2.09799999]
    const p = tensor([1, -2], [2], { backend }).keep();
    p.requiresGrad = true;
    p.grad = tensor([0.5, 0.1], [2], { backend }).keep();
    const opt = new AdamW([p], { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    opt.update();
    const got = p.toArraySync();
    expect(got[0]).toBeCloseTo(0.899000002, 6);
    expect(got[1]).toBeCloseTo(-2.09799999, 6);
    expect([...opt.state().m[0].toArraySync()].map((x) => +x.toFixed(7))).toEqual([0.05, 0.01]);
    expect(opt.step).toBe(1);
  });

  it('clipGradNorm scales all gradients by maxNorm / norm and returns the norm', () => {
    const a = tensor([0, 0], [2], { backend }).keep(), b = tensor([0], [1], { backend }).keep();
    a.grad = tensor([3, 0], [2], { backend }).keep();
    b.grad = tensor([4], [1], { backend }).keep();
    const norm = clipGradNorm([a, b], 1);
    expect(norm.itemSync()).toBeCloseTo(5, 6);
    expect([...a.grad.toArraySync()].map((x) => +x.toFixed(6))).toEqual([0.6, 0]);
    expect(b.grad.toArraySync()[0]).toBeCloseTo(0.8, 6);
    // below the threshold nothing changes
    clipGradNorm([a, b], 10);
    expect(b.grad.toArraySync()[0]).toBeCloseTo(0.8, 6);
  });
});
