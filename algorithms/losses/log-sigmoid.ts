/** log σ(x), stable for large |x|: min(x, 0) − log(1 + e^(−|x|)). */
import { abs, addScalar, exp, log, minimum, neg, sub, zeros } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';

export function logSigmoid(x: Tensor): Tensor {
  const zero = zeros(x.shape, { backend: x.backend, dtype: x.dtype });
  return sub(minimum(x, zero), log(addScalar(exp(neg(abs(x))), 1))); // [...x]
}
