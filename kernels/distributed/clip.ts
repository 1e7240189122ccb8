/**
 * Global gradient-norm clipping over a model split across ranks (Pascanu et al. 2013, Alg. 1;
 * as Megatron does it): each rank sums the squares of the gradients it counts, the sums are added
 * over the model-parallel groups (tensor, then pipeline), and every rank scales its gradients by
 * the same factor. A parameter held whole by several ranks (a norm under tensor parallel, the
 * tied embedding's copy on the last pipeline stage) is counted by one of them only.
 */
import { tensor } from '../engine.js';
import { ShapeError } from '../errors.js';
import { apply, kernel } from '../op.js';
import { CLIP_GRAD_NORM } from '../optim.js';
import { noGrad } from '../tensor.js';
import type { Tensor } from '../tensor.js';
import type { ProcessGroup } from './process-group.js';

/** Returns the norm of the whole model's gradient, before clipping. */
export async function parallelClipGradNorm(params: readonly Tensor[], counted: readonly boolean[], groups: readonly ProcessGroup[], maxNorm: number): Promise<number> {
  const grads = params.map((p, i) => ({ g: p.grad, counted: counted[i] })).filter((x): x is { g: Tensor; counted: boolean } => x.g !== null && !x.g.isDisposed);
  if (grads.length === 0) throw new ShapeError('clipGradNorm: no parameter has a gradient; call backward() first');
  const mine = grads.filter((x) => x.counted).map((x) => x.g);
  let squares = 0;
  if (mine.length > 0) {
    const n = noGrad(() => apply('clipGradNorm', CLIP_GRAD_NORM, mine, { maxNorm: Infinity })); // [] this rank's norm, nothing scaled
    squares = (await n.item()) ** 2;
    n.dispose();
  }
  const total = tensor([squares], [1]); // [1]
  for (const g of groups) await g.allReduce(total);
  const norm = Math.sqrt(await total.item());
  total.dispose();
  if (norm > maxNorm) {
    const coef = maxNorm / (norm + 1e-6);
    for (const { g } of grads) kernel(g.backend, 'affine', 'clipGradNorm')(g.storageFor('clipGradNorm'), g.storageFor('clipGradNorm'), g.numel, coef, 0);
  }
  return norm;
}
