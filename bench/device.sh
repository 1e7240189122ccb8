#!/usr/bin/env bash
# ONE prepared run of every CUDA test and benchmark on a GPU machine (bench/device-main.ts),
# from the self-contained folder that bench/bundle-device.sh makes (.tools/device by default;
# this script is copied into it, so `bash .tools/device/device.sh` works on its own).
# Assumes the NVIDIA driver and a Python with PyTorch + transformers; needs no Node.js and no
# network. Prints nvidia-smi and the driver version first, then one JSON line per result, and
# ONE summary JSON line last. Finishes in under 8 minutes (device-main skips benchmarks that
# would not fit in ALIGN_DEVICE_BUDGET_S, and a hard timeout stops it at 460 s).
# Results are also copied to $OUT/device.jsonl when $OUT is set (the device tool's output folder).
#
#   bash bench/device.sh [bundle-dir]
# From this repository with the device tool: build the bundle here (bash bench/bundle-device.sh),
# then run `bash .tools/device/device.sh` with carry [".tools/device"] and a timeout of ~540 s.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ge 1 ]]; then
  bundle="$(cd "$1" && pwd)"
elif [[ -f "$here/device-main.mjs" ]]; then
  bundle="$here"
else
  bundle="$here/../.tools/device"
fi
summary_fail() { # the last line must be a summary even when the run cannot start
  printf '{"summary":true,"ok":false,"error":"%s"}\n' "$1"
  exit 1
}

echo "== nvidia-smi"
nvidia-smi 2>&1 || echo "nvidia-smi failed (exit $?)"
echo "== driver"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 || true
head -1 /proc/driver/nvidia/version 2>/dev/null || echo "no /proc/driver/nvidia/version"
echo "== host: $(uname -m), $(ldd --version 2>&1 | head -1), $(nproc) cores"

[[ -f "$bundle/device-main.mjs" ]] || summary_fail "no bundle at $bundle (run bench/bundle-device.sh where Node.js is)"
work="${TMPDIR:-/tmp}/align-device"
mkdir -p "$work"

# Node.js: a system node ≥ 20, else the bundled one (xz, or Python's lzma where xz is missing).
node=""
if command -v node >/dev/null && [[ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" -ge 20 ]]; then
  node="$(command -v node)"
else
  node="$work/node"
  if [[ ! -x "$node" ]]; then
    if command -v xz >/dev/null; then
      xz -dc "$bundle/node.xz" > "$node.tmp"
    else
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bundle/node.xz" "$node.tmp"
    fi
    chmod +x "$node.tmp" && mv "$node.tmp" "$node"
  fi
fi
echo "== node: $node $("$node" --version 2>&1)"

# The addon links libstdc++ (GLIBCXX_3.4.30, GCC 12) and glibc ≥ 2.34: say so plainly if missing.
libstdcxx="$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')"
if [[ -n "$libstdcxx" ]] && ! grep -qa 'GLIBCXX_3\.4\.30' "$libstdcxx"; then
  echo "warning: $libstdcxx lacks GLIBCXX_3.4.30; the addon (built with GCC 12) may not load" >&2
fi

# The CUDA libraries of this machine's PyTorch: its nvidia/*/lib wheel folders and torch/lib.
ALIGN_CUDA_LIBS="$(python3 - <<'PY' 2>/dev/null
import glob, os
dirs = []
try:
    import nvidia
    for base in nvidia.__path__:
        dirs += sorted(glob.glob(os.path.join(base, "cu13", "lib"))) + sorted(glob.glob(os.path.join(base, "*", "lib")))
except Exception:
    pass
try:
    import torch
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PY
)"
export ALIGN_CUDA_LIBS="${ALIGN_CUDA_LIBS}${ALIGN_CUDA_LIBS_EXTRA:+:$ALIGN_CUDA_LIBS_EXTRA}"
export ALIGN_CUDA_CACHE="$work/cuda-cache"
export ALIGN_DEVICE_BUDGET_S="${ALIGN_DEVICE_BUDGET_S:-400}"
echo "== ALIGN_CUDA_LIBS=$ALIGN_CUDA_LIBS"
python3 -c 'import torch, transformers; print("== torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1 || true

log="$work/device.jsonl"
timeout --signal=TERM 460 "$node" "$bundle/device-main.mjs" | tee "$log"
status=${PIPESTATUS[0]}
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then cp "$log" "$OUT/device.jsonl"; fi
if [[ $status -eq 124 ]]; then
  summary_fail "device-main timed out after 460 s; see the JSON lines above"
fi
if ! tail -1 "$log" | grep -q '"summary":true'; then
  summary_fail "device-main exited with status $status without a summary"
fi
exit "$status"
