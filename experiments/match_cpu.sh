#!/usr/bin/env bash
# The text-matching comparison (docs/MATCHING.md) at a small CPU budget, one task: teacher -> plain two-tower (siamese) ->
# VIRT -> DC-BERT -> late-fusion twin, each tested through the document cache, every stage with the same
# extra --set overrides (the budget). A stage whose results.json exists is skipped; STAGES picks a subset.
#   bash experiments/match_cpu.sh QQP runs/match_cpu/QQP --set data.max_examples=6400 --set train.epoch=1
#   python experiments/match_table.py runs/match_cpu/QQP
set -euo pipefail
task=$1; root=$2; shift 2
for stage in ${STAGES:-teacher siamese virt dc_bert late_fusion}; do
    if [[ -f $root/$stage/results.json ]]; then echo "$stage: done earlier"; continue; fi
    extra=()
    if [[ $stage == virt || $stage == dc_bert ]]; then extra=(--set "distill.teacher=$root/teacher/student"); fi
    python train.py --config "config/match/$task/$stage.config" --logdir "$root/$stage" --do_test "$@" "${extra[@]}"
done
