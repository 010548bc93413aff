#!/usr/bin/env bash
# Batch-1 CPU latency of the teacher and of one run per student architecture, measured one model at a
# time by test.py on the first 50 dev examples (latency depends on the architecture, not the weights;
# experiments/method_table.py matches runs to these by parameter count). Output: runs/cmp/latency/<TASK>/<run>/results.json
#   OMP_NUM_THREADS=1 bash experiments/latency_runs.sh SST-2 MRPC
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
for task in "$@"; do
  for run in runs/glue/$task/teacher runs/cmp/$task/kd runs/cmp/$task/distilbert runs/cmp/$task/distilled_bilstm; do
    [ -f "$run/config.ini" ] || { echo "!! $run: no run"; continue; }
    name=$(basename "$run")
    sed -i 's/^base = .*/base =/' "$run/config.ini"  # runs made before config.ini stood alone
    $PY test.py --config "$run/config.ini" --checkpoint "$run" --logdir "runs/cmp/latency/$task/$name" \
        --set eval.latency_batches=50 > /dev/null || echo "!! $task/$name failed"
  done
done
