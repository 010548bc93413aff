#!/usr/bin/env bash
# Batch-1 CPU latency of every tested run under runs/cmp/<TASK> (and the teacher), measured one model at a
# time by test.py on the first 50 dev examples, so no other run shares the cores. Output:
# runs/cmp/latency/<TASK>/<run>/results.json, read by tools/method_table.py.
#   bash tools/latency_runs.sh SST-2 MRPC
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
for task in "$@"; do
  $PY test.py --config runs/glue/$task/teacher/config.ini --checkpoint runs/glue/$task/teacher \
      --logdir runs/cmp/latency/$task/teacher --set eval.latency_batches=50 > /dev/null
  for results in runs/cmp/$task/*/results.json runs/cmp/$task/*/phase2/results.json; do
    [ -f "$results" ] || continue
    dir=$(dirname "$results")
    name=${dir#runs/cmp/$task/}; name=${name%/phase2}
    $PY test.py --config "$dir/config.ini" --checkpoint "$dir" --logdir "runs/cmp/latency/$task/$name" \
        --set eval.latency_batches=50 > /dev/null || echo "!! $task/$name failed"
  done
done
