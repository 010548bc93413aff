#!/usr/bin/env bash
# The multilingual comparison (Ding et al. 2022's multi-stage framework; docs/RESULTS.md) on a 2-core CPU.
#   phase 1, one after another on both cores: mul_mse (stage 1, the multilingual model) -> bottle_distill (stage 2,
#            from it) -> rec_bottle_distill (stage 3, from stage 2, taught by stage 1)
#   phase 2, two queues of one thread each, side by side (stage 4, from stage 3, taught by the English teacher):
#            teacher applied directly -> rec_bottle_mcl -> rec_bottle_bool  |  raw student applied directly ->
#            rec_bottle_ce -> rec_bottle_mse
# Every stage gets the same extra --set overrides (the budget), and stage 4 also STAGE4_EPOCHS when set (the
# authors give stage 4 three times mul_mse's epochs: 60 against 20); a stage whose train_summary.json exists (train.py
# writes it last, after the test) is skipped, and one cut off resumes from its last step checkpoint (add
# --set train.save_steps=N for some inside an epoch), so the command resumes. The table: python experiments/multilingual_table.py --root ROOT
# bf16 autocast doubles a CPU with AVX512-BF16's throughput here (mul_mse: 76 against 41 pairs/s on 2 threads) and
# reproduces the fp32 scores to 0.1 point (docs/RESULTS.md):
#   STAGE4_EPOCHS=3 bash experiments/multilingual_cpu.sh runs/multilingual/minilm --set data.max_examples=30000 --set train.epoch=1 --set train.precision=bf16
set -euo pipefail
root=$1; shift
mkdir -p "$(dirname "$root")"

config_of() {
    case $1 in
        teacher_direct|student_direct|mse) echo "config/multilingual/$1.config" ;;
        bottle_distill|rec_bottle_distill) echo "config/distill/minilm_$1.config" ;;
        *) echo "config/multilingual/minilm_$1.config" ;;
    esac
}

run_stage() {  # run_stage NAME [extra train.py args]
    local stage=$1; shift
    local dir=$root/$stage test=(--do_test)
    [[ $stage == bottle_distill ]] && test=()  # stage 2 has no sentence-level test; its export feeds stage 3
    if [[ -f $dir/train_summary.json ]]; then echo "$stage: done earlier"; return; fi
    compgen -G "$dir/checkpoints/step-*.pt" > /dev/null && test+=(--checkpoint "$dir")  # a stage cut off: go on from it
    python train.py --config "$(config_of "$stage")" --logdir "$dir" "${test[@]}" "$@"
}

queue() {  # queue "STAGE[:PRETRAINED_STAGE[:TEACHER_STAGE]] ..." EXTRA...  (earlier stages' exports under ROOT)
    local stages=$1; shift
    for item in $stages; do
        local stage init teacher handoff=()
        IFS=: read -r stage init teacher <<< "$item"
        [[ -n $init ]] && handoff+=(--set "model.pretrained=$root/$init")
        [[ -n $teacher ]] && handoff+=(--set "distill.teacher=$root/$teacher")
        run_stage "$stage" "$@" "${handoff[@]}"
    done
}

export OMP_NUM_THREADS=2
queue "mse bottle_distill:mse rec_bottle_distill:bottle_distill:mse" "$@" > "$root.chain.log" 2>&1
stage4=()
[[ -n ${STAGE4_EPOCHS:-} ]] && stage4=(--set "train.epoch=$STAGE4_EPOCHS")
export OMP_NUM_THREADS=1
queue "teacher_direct rec_bottle_mcl:rec_bottle_distill rec_bottle_bool:rec_bottle_distill" "$@" "${stage4[@]}" > "$root.queue1.log" 2>&1 &
q1=$!
queue "student_direct rec_bottle_ce:rec_bottle_distill rec_bottle_mse:rec_bottle_distill" "$@" "${stage4[@]}" > "$root.queue2.log" 2>&1 &
q2=$!
wait $q1 && wait $q2
echo "done: python experiments/multilingual_table.py --root $root"
