/** Batched matrix multiply with optional transposes and a broadcast operand (stride 0). */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// A[b] [M,K] (or [K,M] if transA), B[b] [K,N] (or [N,K] if transB) → out [batch, M, N]
export function matmul(
  a: Storage, b: Storage, out: Storage, batch: number, M: number, N: number, K: number,
  transA: boolean, transB: boolean, strideA: number, strideB: number,
): void {
  const as = arr(a), bs = arr(b), o = arr(out);
  for (let p = 0; p < batch; p++) {
    const oa = p * strideA, ob = p * strideB, oo = p * M * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = as[oa + (transA ? k * M + i : i * K + k)]!;
          const bv = bs[ob + (transB ? j * K + k : k * N + j)]!;
          acc += av * bv;
        }
        o[oo + i * N + j] = acc;
      }
    }
  }
}
