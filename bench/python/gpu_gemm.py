"""PyTorch baseline for the GPU GEMM benchmark of bench/device-main.ts: torch.matmul on n×n
bf16 matrices (fp32 accumulation inside cuBLAS), timed with CUDA events after a warm-up.
Prints one JSON line: {"framework":"torch","version":...,"dtype":"bf16","n":...,"tflops":...}.

Run on the GPU machine (bench/device.sh does): python3 bench/python/gpu_gemm.py --n 8192 --iters 20
"""

import argparse
import json

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args()
    a_ = torch.full((a.n, a.n), 0.01, device="cuda", dtype=torch.bfloat16)
    b_ = torch.full((a.n, a.n), 0.02, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.matmul(a_, b_)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(a.iters):
        torch.matmul(a_, b_)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000
    print(json.dumps({"framework": "torch", "version": torch.__version__, "cuda": torch.version.cuda,
                      "gpu": torch.cuda.get_device_name(0), "dtype": "bf16", "n": a.n, "iters": a.iters,
                      "tflops": round(2 * a.n ** 3 * a.iters / seconds / 1e12, 1),
                      "ms_per_gemm": round(seconds * 1000 / a.iters, 3)}))


if __name__ == "__main__":
    main()
