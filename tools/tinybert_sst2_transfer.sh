#!/bin/bash
# TinyBERT on SST-2 with its intermediate stage on Tang's transfer set, against its two twins (one seed per call):
#   inter  intermediate stage (tinybert_intermediate.config) on the training set + Tang's copies, 2,105 steps
#   pred   prediction stage (tinybert_prediction.config) on the training set, 1 epoch = 2,105 steps; linked as `tinybert`
#   twin   the general-distilled start fine-tuned on labels, 2 epochs = 4,210 steps (tinybert_baseline.config)
#   base   the first two pretrained layers fine-tuned on labels, 4,210 steps (baseline.config): the undistilled start
#   bash tools/tinybert_sst2_transfer.sh SEED [inter pred twin base]
# Needs the teacher and Tang's set (python tools/compare_full.py --root runs/sst2 --tasks SST-2 --seeds 1 --epochs SST-2=2
# --only SST-2_teacher SST-2_aug) and a general-distilled TinyBERT student (GENERAL, default runs/full_cpu/general/tinybert).
# Same step budget for all three students; a finished job leaves <run>/done and is skipped when called again.
set -euo pipefail
s=$1; shift
jobs=("$@"); [[ ${#jobs[@]} -gt 0 ]] || jobs=(inter pred twin base)
R=${ROOT:-runs/sst2}; T=$R/teachers/SST-2; A=$R/aug/SST-2/tang.tsv; D=$R/s$s/SST-2; C=config/glue/SST-2
G=${GENERAL:-runs/full_cpu/general/tinybert}
COMMON=(--seed "$s" --set output.tensorboard=false --set eval.latency_batches=0)
run() {  # RUN_DIR CONFIG [train.py arguments]
    local dir=$1 config=$2; shift 2
    [[ -f $dir/done ]] && return
    echo "+ $(date +%T) python train.py --config $config --logdir $dir ${COMMON[*]} $*"
    python train.py --config "$config" --logdir "$dir" "${COMMON[@]}" "$@"
    touch "$dir/done"
}
for job in "${jobs[@]}"; do
    case $job in
        inter) run "$D/tinybert_tang_intermediate" $C/tinybert_intermediate.config --set "distill.teacher=$T" \
                   --set "model.pretrained=$G" --set data.use_aug=true --set "data.aug_file=$A" --set train.max_steps=2105 ;;
        pred)  run "$D/tinybert_tang" $C/tinybert_prediction.config --do_test --set "distill.teacher=$T" \
                   --set "model.pretrained=$D/tinybert_tang_intermediate/student" --set data.use_aug=false
               ln -sfn tinybert_tang "$D/tinybert" ;;  # the name tools/method_table.py reads
        twin)  run "$D/tinybert_baseline" $C/tinybert_baseline.config --do_test --set data.use_aug=false \
                   --set "model.pretrained=$G" --set train.epoch=2 ;;
        base)  run "$D/baseline" $C/baseline.config --do_test --set train.epoch=2 ;;
        *) echo "tinybert_sst2_transfer.sh: unknown job '$job' (inter, pred, twin, base)" >&2; exit 2 ;;
    esac
done
