#!/usr/bin/env bash
# Compile check of every CUDA kernel source with nvcc: a cubin for sm_80 (A100) and sm_90
# (H100/H200), and PTX for compute_90, all with warnings as errors. It checks that the sources
# compile; they run only where kernels/cuda-backend.ts compiles them with NVRTC on a GPU machine.
#
#   bash kernels/cuda/check.sh            # uses $NVCC, else nvcc on PATH, else the tools venv
#
# nvcc is not needed for anything else. The tools venv (about 187 MB of wheels, 514 MB installed):
#   python3 -m venv .tools/cuda-venv && .tools/cuda-venv/bin/pip install nvidia-cuda-nvcc==13.5.37 nvidia-cuda-nvrtc==13.5.37 nvidia-cuda-cccl==13.3.5.0.6
# (nvidia-cuda-nvcc pulls nvidia-cuda-crt, nvidia-cuda-runtime and nvidia-nvvm: the compiler,
# its C runtime headers, cuda_runtime.h and cicc: 125 MB. nvidia-cuda-nvrtc (58 MB) lets the vitest
# checks compile every kernel through NVRTC, the run-time path; nvidia-cuda-cccl (4 MB) completes
# the headers for the ABI check.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv_nvcc="$(ls "$root"/.tools/cuda-venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -1 || true)"
nvcc="${NVCC:-$(command -v nvcc || true)}"
nvcc="${nvcc:-$venv_nvcc}"
if [[ -z "$nvcc" || ! -x "$nvcc" ]]; then
  echo "check.sh: nvcc not found (set NVCC, put nvcc on PATH, or install the tools venv; see the header of this file)" >&2
  exit 2
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "nvcc: $nvcc ($("$nvcc" --version | tail -1))"
failed=0
count=0
for src in "$here"/*.cu; do
  name="$(basename "$src" .cu)"
  for target in "--cubin -arch=sm_80" "--cubin -arch=sm_90" "-ptx -arch=compute_90"; do
    count=$((count + 1))
    # shellcheck disable=SC2086  # $target is two words on purpose
    if log="$("$nvcc" $target -std=c++17 -Werror all-warnings -I "$here" "$src" -o "$out/$name.${target##*=}" 2>&1)"; then
      [[ -n "$log" ]] && echo "$log"
      echo "ok   $name.cu ($target)"
    else
      echo "FAIL $name.cu ($target)"
      echo "$log"
      failed=$((failed + 1))
    fi
  done
done
echo "$((count - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
