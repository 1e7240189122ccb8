/**
 * A spot check of a GEMM result, so that a broken kernel cannot report a fast number: a few
 * entries of out [M, N] = op(A) · op(B) against a float64 dot product (bench gemm, the BLAS choice).
 */

/**
 * out [M, N] against Σk op(A)(i, k)·op(B)(k, j) at four fixed entries, where A is [M, K] (stored
 * [K, M] when tA) and B is [K, N] (stored [N, K] when tB). Throws naming `what` and the entry.
 */
export function checkGemmEntries(
  out: ArrayLike<number>, A: Float32Array, B: Float32Array, M: number, N: number, K: number, tA: boolean, tB: boolean, what: string,
): void {
  for (const [i, j] of [[0, 0], [M - 1, N - 1], [M >> 1, N >> 3], [M >> 3, N >> 1]] as const) {
    let want = 0, scale = 0;
    for (let k = 0; k < K; k++) {
      const p = A[tA ? k * M + i : i * K + k]! * B[tB ? j * K + k : k * N + j]!;
      want += p;
      scale += Math.abs(p);
    }
    const got = out[i * N + j]!;
    // fp32 accumulation over K terms: error grows about like sqrt(K)·eps·Σ|a·b|; 1e-5·Σ|a·b| is generous.
    if (!(Math.abs(got - want) <= 1e-5 * scale + 1e-6)) throw new Error(`${what}: out[${i}, ${j}] = ${got}, expected ${want}`);
  }
}
