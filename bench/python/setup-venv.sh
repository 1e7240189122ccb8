#!/usr/bin/env bash
# Benchmark-only Python venv with PyTorch for CPU, in .tools/bench-venv.
# It is the baseline that bench/python/train_step.py measures; npm test never needs it.
# Cached: once the venv is complete (stamp file) this does nothing.
#
# Why the package list is explicit: PyPI's Linux torch wheel is a CUDA build; its CPU-only build
# lives on another index that this project cannot reach. libtorch_cuda.so is linked at load time
# against the CUDA runtime libraries, so `pip install --no-deps torch` fails on `import torch`
# (measured: "libcublasLt.so.*[0-9] not found"). We install torch --no-deps plus exactly the
# libraries its .so files link against, and leave out what only GPU or compile paths load lazily
# (triton for torch.compile, cusolver, nvtx, cccl headers, cuda-bindings): 4.0 GB instead of
# 5.4 GB, ~85 s instead of ~115 s on a cold cache. Measured with torch 2.15.0 on Python 3.11.
# When bumping TORCH, take the new pins from `pip install torch==NEW` in a scratch venv
# (`pip list`), and check `readelf -d torch/lib/libtorch_cuda.so | grep NEEDED`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.tools/bench-venv"
TORCH=2.15.0
TRANSFORMERS=5.24.0  # the generation baseline and the HF parity fixture script
stamp="$venv/.complete-torch-$TORCH-transformers-$TRANSFORMERS"
python="${PYTHON:-python3}"

[[ -f "$stamp" ]] && exit 0

# Shared-library dependencies of torch 2.15.0's CUDA 13.2 build (versions as pip resolves them).
cuda_libs=(
  nvidia-cuda-runtime==13.2.86 nvidia-cublas==13.4.1.3 nvidia-cufft==12.2.0.57
  nvidia-cufile==1.17.1.22 nvidia-cuda-cupti==13.2.86 nvidia-cusparse==12.7.10.12
  nvidia-nvjitlink==13.5.37 nvidia-cuda-nvrtc==13.2.86 nvidia-cudnn-cu13==9.26.0.51
  nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2
)
# torch's pure-Python dependencies, plus numpy (torch warns at import without it).
py_deps=(
  filelock==4.3.1 typing-extensions==4.16.0 sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1
  jinja2==3.1.6 markupsafe==3.0.4 fsspec==2026.9.0 numpy==2.4.6
)

command -v "$python" >/dev/null || { echo "setup-venv: $python not found (set PYTHON=...)" >&2; exit 1; }
# The pins (numpy 2.4) need Python 3.11 or newer.
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup-venv: $python is $("$python" -V 2>&1); need 3.11+ (set PYTHON=...)" >&2; exit 1; }
echo "setup-venv: creating $venv with torch $TORCH for CPU (one-time, ~2.5 GB download, 4 GB on disk)"
rm -rf "$venv"  # a partial venv from an interrupted run is not worth repairing
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
# --no-cache-dir: do not leave a second 2.5 GB copy of the wheels in ~/.cache/pip.
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir)
if [[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]]; then
  "${pip[@]}" --no-deps "torch==$TORCH" "${cuda_libs[@]}" "${py_deps[@]}"
else
  # Other platforms: let pip resolve (aarch64 and macOS wheels have no CUDA bulk to trim).
  "${pip[@]}" "torch==$TORCH" numpy
fi

# Prove it works before marking it complete: import, a tiny backward pass, and the SDPA we time.
"$venv/bin/python" -W error::UserWarning - <<'PY'
import torch, torch.nn.functional as F
x = torch.randn(1, 2, 8, 16, requires_grad=True)
F.scaled_dot_product_attention(x, x, x, is_causal=True).sum().backward()
assert x.grad is not None and x.grad.shape == x.shape
print(f"setup-venv: torch {torch.__version__} OK ({torch.get_num_threads()} threads)")
PY
# transformers and its pure-Python dependencies (it does not pull torch, which is already there).
"${pip[@]}" "transformers==$TRANSFORMERS"
"$venv/bin/python" -c 'import transformers; print(f"setup-venv: transformers {transformers.__version__} OK")'
touch "$stamp"
