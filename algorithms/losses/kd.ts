/**
 * SFT with knowledge distillation from a teacher's precomputed top-K logits (Hinton et al. 2015;
 * NeMo-Aligner `utils/distributed.py::_TopKLogitsCrossEntropy`). Dimensions: N trained tokens
 * (already selected by the loss mask), V vocabulary, K teacher ids per token.
 *
 * With the teacher's top-K logits t [N, K] (scaled by s_t) and the student's logits at the same K
 * ids (scaled by s_s), both distributions are renormalised over those K ids only; the teacher's
 * stored full-vocabulary logsumexp is not used:
 *   p = softmax_K(s_t·t),  q = softmax_K(s_s·student[ids])
 *   fwd_kl   Σ_k p_k (log p_k − log q_k)     KL(p ‖ q), Hinton et al. 2015 §2 (NeMo-Aligner default)
 *   bwd_kl   Σ_k q_k (log q_k − log p_k)     KL(q ‖ p), NeMo-Aligner `bwd_kl=True`
 * The loss is the mean over the N tokens. The caller adds the SFT term (`kdObjective`):
 * kd_w·KD + sft_w·CE, both means over the same trained tokens (defaults 1 and 0).
 */
import { ShapeError, add, embedding, exp, logSoftmax, mul, mulScalar, reshape, sub, sum, tensor } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';

export type DistillationKind = 'fwd_kl' | 'bwd_kl';
export const DISTILLATION_KINDS: readonly DistillationKind[] = ['fwd_kl', 'bwd_kl'];

export interface DistillationOptions {
  kind: DistillationKind;
  /** Scale of the teacher logits before the softmax (NeMo-Aligner `target_logits_scale`). Default 1. */
  teacherScale?: number;
  /** Scale of the student logits before the softmax (NeMo-Aligner `logits_scale`). Default 1. */
  studentScale?: number;
}

/**
 * Top-K distillation loss [] of studentLogits [N, V] against the teacher's ids and logits
 * (N·K each, row-major). Also returns the per-token divergence [N].
 */
export function topKDistillationLoss(
  studentLogits: Tensor, teacherIds: readonly number[], teacherLogits: ArrayLike<number>, K: number, opts: DistillationOptions,
): { loss: Tensor; perTokenKl: Tensor } {
  const [N, V] = studentLogits.shape;
  checkInputs(studentLogits, teacherIds, teacherLogits, K);
  const create = { backend: studentLogits.backend, dtype: studentLogits.dtype };

  // Teacher side, on the host: log p = s_t·t − logsumexp_K(s_t·t).
  const st = opts.teacherScale ?? 1;
  const logPValues = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, st * teacherLogits[n * K + k]);
    let z = 0;
    for (let k = 0; k < K; k++) z += Math.exp(st * teacherLogits[n * K + k] - m);
    const lse = m + Math.log(z);
    for (let k = 0; k < K; k++) logPValues[n * K + k] = st * teacherLogits[n * K + k] - lse;
  }
  const logP = tensor(logPValues, [N, K], create); // [N, K]

  // Student side: gather the logits at the teacher's ids (embedding on [N·V, 1] scatter-adds back).
  const flatIds = teacherIds.map((id, i) => Math.floor(i / K) * V + id);
  const gathered = reshape(embedding(reshape(studentLogits, [N * V, 1]), tensor(flatIds, [N * K], { ...create, dtype: 'i32' })), [N, K]); // [N, K]
  const logQ = logSoftmax(mulScalar(gathered, opts.studentScale ?? 1)); // [N, K]

  let perTokenKl: Tensor; // [N]
  switch (opts.kind) {
    case 'fwd_kl': {
      const p = tensor(logPValues.map(Math.exp), [N, K], create); // [N, K]
      perTokenKl = sum(mul(p, sub(logP, logQ)), -1);
      break;
    }
    case 'bwd_kl':
      perTokenKl = sum(mul(exp(logQ), sub(logQ, logP)), -1);
      break;
  }
  const loss = mulScalar(sum(perTokenKl), 1 / Math.max(1, N)); // []
  return { loss, perTokenKl };
}

function checkInputs(studentLogits: Tensor, teacherIds: readonly number[], teacherLogits: ArrayLike<number>, K: number): void {
  if (studentLogits.rank !== 2) throw new ShapeError(`topKDistillationLoss: studentLogits must be [N, V] (trained tokens only), got [${studentLogits.shape.join(', ')}]`);
  const [N, V] = studentLogits.shape;
  if (!(Number.isInteger(K) && K >= 1 && K <= V)) throw new ShapeError(`topKDistillationLoss: K = ${K} must be an integer in [1, V = ${V}]`);
  if (teacherIds.length !== N * K || teacherLogits.length !== N * K) {
    throw new ShapeError(`topKDistillationLoss: expected N·K = ${N}·${K} = ${N * K} teacher ids and logits, got ${teacherIds.length} ids and ${teacherLogits.length} logits`);
  }
  if (N * V > 2 ** 31 - 1) throw new ShapeError(`topKDistillationLoss: N·V = ${N * V} overflows the i32 gather index; call it on fewer tokens at a time`);
  for (let n = 0; n < N; n++) {
    const seen = new Set<number>();
    for (let k = 0; k < K; k++) {
      const id = teacherIds[n * K + k];
      if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new ShapeError(`topKDistillationLoss: teacher id ${id} at token ${n}, rank ${k} is outside [0, V = ${V})`);
      if (seen.has(id)) throw new ShapeError(`topKDistillationLoss: teacher id ${id} appears twice at token ${n}; top-K ids must be distinct`);
      seen.add(id);
    }
  }
}

/**
 * One token's teacher top-K from its full-vocabulary logits row [V] (host-side, for precomputing
 * the teacher's targets): ids by descending logit, ties broken by the lower id, and their logits.
 */
export function teacherTopK(logits: ArrayLike<number>, V: number, K: number): { ids: number[]; logits: number[] } {
  if (logits.length !== V) throw new ShapeError(`teacherTopK: expected one row of V = ${V} logits, got ${logits.length}`);
  if (!(Number.isInteger(K) && K >= 1 && K <= V)) throw new ShapeError(`teacherTopK: K = ${K} must be an integer in [1, V = ${V}]`);
  // A sorted buffer of the best K so far; a later id enters only if strictly larger, so ties keep the lower id.
  const ids: number[] = [], vals: number[] = [];
  for (let v = 0; v < V; v++) {
    const x = logits[v];
    if (Number.isNaN(x)) throw new Error(`teacherTopK: logit ${v} is NaN`);
    if (vals.length === K && !(x > vals[K - 1])) continue;
    let at = vals.length;
    while (at > 0 && vals[at - 1] < x) at--;
    ids.splice(at, 0, v);
    vals.splice(at, 0, x);
    if (vals.length > K) {
      ids.pop();
      vals.pop();
    }
  }
  return { ids, logits: vals };
}

/** kdWeight·KD + sftWeight·CE [] (NeMo-Aligner `kd_loss_weight` 1, `sft_loss_weight` 0); ceLoss may be null when sftWeight is 0. */
export function kdObjective(kdLoss: Tensor, ceLoss: Tensor | null, w: { kdWeight?: number; sftWeight?: number } = {}): Tensor {
  const kdWeight = w.kdWeight ?? 1, sftWeight = w.sftWeight ?? 0;
  const kd = mulScalar(kdLoss, kdWeight); // []
  if (sftWeight === 0) return kd;
  if (ceLoss === null) throw new Error(`kdObjective: sftWeight is ${sftWeight} but no cross-entropy loss was given`);
  return add(kd, mulScalar(ceLoss, sftWeight)); // []
}
