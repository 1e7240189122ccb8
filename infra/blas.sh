#!/usr/bin/env bash
# Installs the BLAS libraries the native addon's matmul can run on into the project-local .tools/blas/
# (git-ignored), then chooses among them and the system OpenBLAS by measuring:
#   - .tools/blas/openblas-0.3.34/  libscipy_openblas.so (PyPI scipy-openblas32, OpenBLAS 0.3.34 DYNAMIC_ARCH)
#   - .tools/blas/mkl-2026.2/       libmkl_rt.so.3 and the parts it loads (PyPI mkl, Intel oneMKL 2026.2)
#   - .tools/blas/choice.json       the fastest on this machine (infra/blas-choose.ts), which
#                                   kernels/native-backend.ts loads; kernels/README.md "Which BLAS"
# The pinned wheels (infra/blas-requirements.txt, with hashes) are downloaded to a temporary folder,
# only the libraries and licences are kept, and the wheels are deleted.
# Installs again when the pins or the file list below change, or a file is missing; measures again
# after an install, when choice.json is missing, and when the CPU (model name, widest vector ISA)
# or the system OpenBLAS differs from the one last measured. A warm run only reads a few files.
# Called by infra/setup.sh after the native addon is built, or alone: `bash infra/blas.sh`.
set -euo pipefail

blas_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$blas_root"
REQS=infra/blas-requirements.txt
B=.tools/blas
mkdir -p "$B" .tools/logs

blas_say() { echo "blas: $*"; }
blas_die() { echo "blas: ERROR: $*" >&2; exit 1; }

# What each wheel gives: one line per wheel, "<wheel name>-*.whl <folder under .tools/blas> <member>...".
# MKL's libmkl_rt finds its parts next to itself; it needs exactly these (without one it prints
# "Intel oneMKL FATAL ERROR" and exits the process): the sequential layer, the LP64 interface, the
# core, and the kernels of every CPU generation (def, mc3, avx2, avx512, avx10).
mkl_lib=mkl-2026.2.0.data/data/lib
layout="scipy_openblas32 openblas-0.3.34 scipy_openblas32/lib/libscipy_openblas.so scipy_openblas32-0.3.34.481.3.dist-info/licenses/LICENSE.txt
mkl mkl-2026.2 $mkl_lib/libmkl_rt.so.3 $mkl_lib/libmkl_core.so.3 $mkl_lib/libmkl_sequential.so.3 $mkl_lib/libmkl_intel_lp64.so.3 $mkl_lib/libmkl_def.so.3 $mkl_lib/libmkl_mc3.so.3 $mkl_lib/libmkl_avx2.so.3 $mkl_lib/libmkl_avx512.so.3 $mkl_lib/libmkl_avx10.so.3 mkl-2026.2.0.dist-info/LICENSE.txt"

[[ -f $REQS ]] || blas_die "$REQS is missing"
installed="$(<"$REQS")
$layout"  # the stamp: editing the pins or the layout triggers a reinstall
install_stamp=$B/.installed
choice_stamp=$B/.chosen

# True when every file the layout lists is in its folder.
blas_files_there() {
  local line folder member
  while read -r _ folder line; do
    for member in $line; do [[ -f $B/$folder/${member##*/} ]] || return 1; done
  done <<<"$layout"
}

if [[ ! -f $install_stamp || "$(<"$install_stamp")" != "$installed" ]] || ! blas_files_there; then
  blas_say "installing OpenBLAS 0.3.34 and oneMKL 2026.2 from PyPI (infra/blas-requirements.txt; ~230 MB download, ~470 MB kept)"
  command -v python3 >/dev/null || blas_die "python3 is needed to download the BLAS wheels (or set ALIGN_SKIP_BLAS_WHEELS=1)"
  log=.tools/logs/blas-install.log
  python3 -m pip --version >"$log" 2>&1 \
    || blas_die "python3 has no pip (install python3-pip, or set ALIGN_SKIP_BLAS_WHEELS=1); log: $blas_root/$log"
  # On the same file system as .tools/blas, so the libraries move into place without a copy.
  tmp="$(mktemp -d "$B/.download.XXXXXX")"
  trap 'rm -rf "$blas_root/$tmp"' EXIT
  if ! python3 -m pip download --no-deps --require-hashes --only-binary=:all: --no-input \
       --disable-pip-version-check --dest "$tmp" -r "$REQS" >>"$log" 2>&1; then
    tail -n 15 "$log" >&2
    blas_die "pip download -r $REQS failed (or set ALIGN_SKIP_BLAS_WHEELS=1 to use the system BLAS); full log: $blas_root/$log"
  fi
  rm -f "$install_stamp" "$choice_stamp"
  # Extract only the listed members of each wheel into <folder>.new, then swap the folders in.
  if ! python3 - "$tmp" "$B" "$layout" >>"$log" 2>&1 <<'EOF'
import glob, os, shutil, sys, zipfile
tmp, dest, layout = sys.argv[1:]
folders = []
for line in layout.strip().splitlines():
    wheel_name, folder, *members = line.split()
    wheels = glob.glob(os.path.join(tmp, wheel_name + "-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one {wheel_name}-*.whl in {tmp}, found {len(wheels)}")
    staged = os.path.join(dest, folder + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    os.makedirs(staged)
    with zipfile.ZipFile(wheels[0]) as z:
        names = set(z.namelist())
        missing = [m for m in members if m not in names]
        if missing:
            sys.exit(f"{os.path.basename(wheels[0])} lacks {', '.join(missing)}")
        for m in members:
            with z.open(m) as src, open(os.path.join(staged, os.path.basename(m)), "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    folders.append(folder)
for folder in folders:
    final = os.path.join(dest, folder)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(final + ".new", final)
    print("extracted", final, sorted(os.listdir(final)))
EOF
  then
    tail -n 5 "$log" >&2
    blas_die "extracting the BLAS libraries from the wheels failed; full log: $blas_root/$log"
  fi
  rm -rf "$tmp"
  trap - EXIT
  blas_files_there || blas_die "the BLAS libraries are not all in $B after extracting them; full log: $blas_root/$log"
  printf '%s' "$installed" >"$install_stamp"
  sync  # the ~470 MB just written: their writeback must not steal the cores being measured below
fi

# --- The choice: measured again when anything it depends on differs. ----------------------------
addon=kernels/native/build/Release/aligner_cpu.node
[[ -f $addon ]] || exit 0  # no addon (ALIGN_SKIP_NATIVE=1): nothing to measure with
# The CPU as the loader sees it (the addon's cpuIsa() and Node's model name), so the stamp and
# kernels/native-backend.ts compare the same facts.
facts="$(node -e "process.stdout.write(require('./$addon').cpuIsa() + ' ' + (require('os').cpus()[0]?.model ?? 'unknown'))" 2>/dev/null)" \
  || facts="unknown unknown"
isa="${facts%% *}" cpu="${facts#* }"
ldc="$(command -v ldconfig || echo /sbin/ldconfig)"
# grep without -m reads all input: an early exit would SIGPIPE ldconfig and fail the pipeline.
system_blas="$("$ldc" -p 2>/dev/null | grep 'libopenblas\.so\.0 ' || true)"
system_blas="${system_blas%%$'\n'*}"
[[ -n $system_blas ]] && system_blas="$(readlink -f "${system_blas##*=> }")"
chosen="$installed
cpu=$cpu isa=$isa system=${system_blas:-none}"
if [[ ! -f $B/choice.json || ! -f $choice_stamp || "$(<"$choice_stamp")" != "$chosen" ]]; then
  rm -f "$choice_stamp"
  log=.tools/logs/blas-choose.log
  # blas-choose.ts prints its one line (the winner and the geomeans) on stdout.
  if ! env -u ALIGN_BLAS_CHOICE node_modules/.bin/tsx infra/blas-choose.ts 2>"$log"; then
    tail -n 15 "$log" >&2
    blas_die "measuring the BLAS candidates failed; full log: $blas_root/$log (rerun: bash infra/blas.sh)"
  fi
  [[ -s $log ]] && cat "$log" >&2  # a candidate that failed is a warning, not a stop
  printf '%s' "$chosen" >"$choice_stamp"
fi
