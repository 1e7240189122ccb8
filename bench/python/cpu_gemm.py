"""PyTorch baseline for bench/gemm.ts: torch.matmul on fp32 CPU matrices of the same shapes and
thread count, each timed call on its own after a warm-up, the median kept (as bench gemm does).
Prints one JSON line: {"framework":"torch","version":...,"threads":...,"results":[{"shape","gflops","ms_median"}]}.

    .tools/bench-venv/bin/python bench/python/cpu_gemm.py --threads 2 --sizes 1024x1024x1024,2048x2048x2048
"""

import argparse
import json
import statistics
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--sizes", required=True, help="comma-separated MxNxK")
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for spec in a.sizes.split(","):
        m, n, k = (int(x) for x in spec.split("x"))
        gen = torch.Generator().manual_seed(m + n + k)
        A = torch.rand((m, k), generator=gen) * 2 - 1  # [M, K]
        B = torch.rand((k, n), generator=gen) * 2 - 1  # [K, N]
        out = torch.empty((m, n))  # [M, N]
        for _ in range(a.warmup):
            torch.matmul(A, B, out=out)
        t0 = time.perf_counter()
        torch.matmul(A, B, out=out)
        first = time.perf_counter() - t0
        reps = min(100, max(5, round(1.0 / max(first, 1e-6))))  # about 1 s per shape
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(A, B, out=out)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        results.append({"shape": spec, "gflops": round(2 * m * n * k / (ms * 1e6), 2), "ms_median": round(ms, 4), "reps": reps})
    print(json.dumps({"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads(), "results": results}, separators=(",", ":")))


if __name__ == "__main__":
    main()
