/**
 * Reverse-mode autodiff over the tape that ops record (micrograd's design, PyTorch's semantics):
 * `backward(loss)` walks the graph in reverse topological order and accumulates `.grad` on leaves.
 * Intermediate gradients are freed as soon as they are consumed; each leaf owns its own `.grad`.
 */
import { ShapeError, fmtShape } from './errors.js';
import { alloc, kernel } from './op.js';
import { Tensor, noGrad } from './tensor.js';
import { add } from './ops/elementwise.js';

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep models would overflow the JS stack with recursion.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const input of t.gradFn?.inputs ?? []) if (input.requiresGrad && !seen.has(input)) stack.push([input, false]);
  }
  return order; // inputs before the tensors computed from them
}

function copyOf(t: Tensor): Tensor {
  const out = alloc(t.backend, t.shape, t.dtype);
  kernel(t.backend, 'copy', 'backward')(t.storageFor('backward'), out.storageFor('backward'), t.numel);
  return out;
}

function onesLike(t: Tensor): Tensor {
  const out = alloc(t.backend, t.shape, t.dtype);
  kernel(t.backend, 'fill', 'backward')(out.storageFor('backward'), t.numel, 1);
  return out;
}

/** Accumulate d root / d leaf into every leaf that requires a gradient. */
export function backward(root: Tensor, gradient?: Tensor): void {
  if (!root.requiresGrad) throw new ShapeError(`backward: tensor ${fmtShape(root.shape)} does not require grad (no parameter contributed to it)`);
  if (!gradient && root.numel !== 1) throw new ShapeError(`backward: a gradient is needed for non-scalar tensor ${fmtShape(root.shape)}`);
  noGrad(() => {
    const pending = new Map<Tensor, Tensor>();
    pending.set(root, gradient ? copyOf(gradient) : onesLike(root));
    const order = topoOrder(root);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = pending.get(t);
      if (!g) continue;
      pending.delete(t);
      if (!t.gradFn) {
        accumulateLeaf(t, g);
        continue;
      }
      const needs = t.gradFn.inputs.map((x) => x.requiresGrad);
      const grads = t.gradFn.backward(g, needs);
      // Ownership: each gradient handed on must be a distinct tensor, because leaf gradients
      // are later updated in place (clipping). The first alias of g takes it over; later ones copy.
      let gHandedOn = false;
      const handed = new Set<Tensor>();
      t.gradFn.inputs.forEach((input, j) => {
        let gi = grads[j];
        if (!gi || !needs[j]) return;
        if (gi === g) {
          if (gHandedOn) gi = copyOf(g);
          gHandedOn = true;
        } else if (handed.has(gi)) gi = copyOf(gi);
        handed.add(gi);
        const prev = pending.get(input);
        if (prev) {
          pending.set(input, add(prev, gi));
          prev.dispose();
          gi.dispose();
        } else {
          pending.set(input, gi);
        }
      });
      if (!gHandedOn) g.dispose();
    }
  });
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf.grad && !leaf.grad.isDisposed) {
    const sum = add(leaf.grad, g).keep();
    leaf.grad.dispose();
    g.dispose();
    leaf.grad = sum;
  } else {
    leaf.grad = g.keep();
  }
  leaf.onGradReady?.(leaf);
}

// Let `loss.backward()` read naturally.
declare module './tensor.js' {
  interface Tensor {
    backward(gradient?: Tensor): void;
  }
}
Tensor.prototype.backward = function (this: Tensor, gradient?: Tensor): void {
  backward(this, gradient);
};
