#!/usr/bin/env bash
# The multilingual comparison (Ding et al. 2022's multi-stage framework; docs/RESULTS.md) on a 2-core CPU.
#   phase 1, one after another on both cores: mul_mse (stage 1, the multilingual model) -> bottle_distill (stage 2,
#            from it) -> rec_bottle_distill (stage 3, from stage 2, taught by stage 1)
#   phase 2, two queues of one thread each, side by side (stage 4, from stage 3, taught by the English teacher):
#            teacher applied directly -> rec_bottle_mcl -> rec_bottle_bool  |  raw student applied directly ->
#            rec_bottle_ce -> rec_bottle_mse
#   phase 3, only with WITH_BRANCHES=1 and/or SEEDS="43 44" (two queues again): the branch without bottleneck
#            (rec_distill -> rec_mcl), the two ablations (bottle6 -> wo_all, wo_recursive) and stage 4 MCL again
#            with each seed of SEEDS, into ROOT_s<seed>
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
        bottle_distill|rec_bottle_distill|rec_distill) echo "config/distill/minilm_$1.config" ;;
        bottle6) echo "config/distill/minilm_bottle_distill.config" ;;
        wo_all|wo_recursive) echo "config/multilingual/ablation_$1.config" ;;
        *) echo "config/multilingual/minilm_$1.config" ;;
    esac
}

run_stage() {  # run_stage NAME [extra train.py args]; RUN_ROOT (default ROOT) holds its run directory
    local stage=$1; shift
    local dir=${RUN_ROOT:-$root}/$stage test=(--do_test)
    [[ $stage == bottle_distill || $stage == bottle6 ]] && test=()  # stage 2 has no sentence-level test
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
if [[ -n ${WITH_BRANCHES:-} || -n ${SEEDS:-} ]]; then
    # phase 3, two queues again: the branch without bottleneck (rec_distill from stage 1, taught by it -> rec_mcl)
    # and the two ablations (a 6-layer bottleneck stage 2 run once -> wo_all, wo_recursive), then stage 4 MCL
    # with each seed of SEEDS into ROOT_s<seed>, the seeds dealt to the queues in turn
    seeds=(${SEEDS:-})
    seed_runs() {  # seed_runs FIRST: every other seed of SEEDS from index FIRST
        for ((i = $1; i < ${#seeds[@]}; i += 2)); do
            RUN_ROOT=${root}_s${seeds[i]} run_stage rec_bottle_mcl "$@" "${stage4[@]}" --seed "${seeds[i]}" \
                --set "model.pretrained=$root/rec_bottle_distill"
        done
    }
    {
        if [[ -n ${WITH_BRANCHES:-} ]]; then
            run_stage rec_distill "$@" --set "model.pretrained=$root/mse" --set "distill.teacher=$root/mse"
            run_stage rec_mcl "$@" "${stage4[@]}" --set "model.pretrained=$root/rec_distill"
        fi
        seed_runs 0 "$@"
    } > "$root.queue3.log" 2>&1 &
    q3=$!
    {
        if [[ -n ${WITH_BRANCHES:-} ]]; then
            run_stage bottle6 "$@" --set "model.pretrained=$root/mse" --set multilingual.layers_to_keep=6 \
                --set multilingual.repeat=1
            for stage in wo_all wo_recursive; do
                run_stage $stage "$@" "${stage4[@]}" --set "model.pretrained=$root/bottle6"
            done
        fi
        seed_runs 1 "$@"
    } > "$root.queue4.log" 2>&1 &
    q4=$!
    wait $q3 && wait $q4
fi
seed_roots=(); for s in ${SEEDS:-}; do seed_roots+=("${root}_s$s"); done
echo "done: python experiments/multilingual_table.py --root $root${WITH_BRANCHES:+ --ablation $root}${SEEDS:+ --seeds ${seed_roots[*]}}"
