#!/usr/bin/env bash
# Builds the self-contained folder that bench/device.sh runs on a GPU machine (which may have no
# Node.js and no network): at most 64 MB, under the git-ignored .tools/device/ by default, so the
# device tool can carry it. Contents:
#   node.xz                  this machine's `node` binary, xz -9 (~24 MB; Node's official build needs glibc ≥ 2.28)
#   device-main.mjs          esbuild bundle of bench/device-main.ts (the engine, models, op cases)
#   native/build/Release/aligner_cpu.node   the addon (CPU backend + CUDA loader; needs glibc ≥ 2.34, GLIBCXX_3.4.30)
#   cuda/*.cu, common.cuh    kernel sources (NVRTC compiles them there for the GPU's arch)
#   fixtures/tiny-llama      the tiny model the model-level checks load
#   python/gpu_*.py          the PyTorch baselines
#   device.sh, manifest.json
# The layout mirrors the repo's relative paths (kernels/ → ./), so the bundle finds the addon and
# the kernels where the sources expect them next to the bundled script.
#
#   bash bench/bundle-device.sh [outdir]      (rebuilds the addon first if it is missing)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.tools/device}"
cd "$root"

addon="kernels/native/build/Release/aligner_cpu.node"
[[ -f "$addon" ]] || npx node-gyp rebuild --directory kernels/native >/dev/null

mkdir -p "$out"
# Everything but the compressed node binary is rebuilt each time (cheap); node.xz is kept while
# the node version is unchanged (xz -9 of ~100 MB takes a minute).
rm -rf "$out/native" "$out/cuda" "$out/fixtures" "$out/python" "$out/device-main.mjs"

node_bin="$(readlink -f "$(command -v node)")"
node_version="$(node --version)"
if [[ ! -f "$out/node.xz" || "$(cat "$out/node.version" 2>/dev/null)" != "$node_version" ]]; then
  echo "compressing $node_bin ($node_version) with xz -9…" >&2
  xz -9 -T0 -c "$node_bin" > "$out/node.xz.tmp"
  mv "$out/node.xz.tmp" "$out/node.xz"
  echo "$node_version" > "$out/node.version"
fi

npx esbuild bench/device-main.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile="$out/device-main.mjs" --log-level=warning

mkdir -p "$out/native/build/Release" "$out/cuda" "$out/fixtures" "$out/python"
cp "$addon" "$out/native/build/Release/"
cp kernels/cuda/*.cu kernels/cuda/common.cuh "$out/cuda/"
cp -r models/fixtures/tiny-llama "$out/fixtures/"
cp bench/python/gpu_*.py "$out/python/"
cp bench/device.sh "$out/device.sh"

size_kb="$(du -sk "$out" | cut -f1)"
cat > "$out/manifest.json" <<JSON
{"built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)", "node": "$node_version", "size_kb": $size_kb}
JSON
echo "bundle: $out ($((size_kb / 1024)) MB)" >&2
if (( size_kb > 64 * 1024 )); then
  echo "bundle-device.sh: the bundle is over 64 MB" >&2
  exit 1
fi
