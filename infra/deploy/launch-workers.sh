#!/usr/bin/env bash
# Starts one compute worker per GPU of this machine (or pod), each seeing only its own GPU, and
# waits; a worker that exits takes the others down, so the orchestrator restarts the set.
#   infra/deploy/launch-workers.sh [N]   N defaults to ALIGN_WORKERS_PER_HOST, else the GPUs that
#                                         nvidia-smi lists, else 1
# Workers of one host share /dev/shm, so a gang run's ranks on this host meet over shared memory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
n="${1:-${ALIGN_WORKERS_PER_HOST:-}}"
if [[ -z "$n" ]]; then
  n=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  [[ "$n" -ge 1 ]] || n=1
fi
host="${ALIGN_WORKER_HOST:-$(hostname)}"
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true; wait' TERM INT
for ((i = 0; i < n; i++)); do
  CUDA_VISIBLE_DEVICES="${ALIGN_GPU_LIST:+$(cut -d, -f$((i + 1)) <<<"$ALIGN_GPU_LIST")}" \
    node_modules/.bin/tsx infra/workers/main.ts --role compute --id "$host-$i" &
  pids+=("$!")
done
# The first worker to exit ends the set (wait -n returns its status).
set +e
wait -n "${pids[@]}"
status=$?
kill -TERM "${pids[@]}" 2>/dev/null
wait
exit "$status"
