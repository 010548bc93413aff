#!/bin/bash
# Where does TinyBERT's task distillation lose to its no-teacher twin? One MRPC run per variant and seed, all in
# bf16 with an evaluation every 50 steps (the best one is tested), one thread per job.
#   bash experiments/tinybert_ablation.sh SEED VARIANT [VARIANT ...]       (GPU=0 bash ... passes --gpu 0 to every run)
# Needs the teacher (runs/full_cpu/teachers/MRPC), the general-distilled student (runs/full_cpu/general/tinybert)
# and, for the *_tr variants, the unlabeled transfer set (runs/transfer/MRPC.tsv); docs/RESULTS.md has the commands.
# Variants (MRPC has 115 steps of 32 pairs per epoch):
#   twin          labels only, general-distilled init, 690 steps (6 epochs)       twin1380: the same, 1,380 steps
#   pred_only     prediction stage alone (soft CE to the teacher, T = 1) from the general init, 690 steps
#   pred_only_tr  the same on the training pairs + the 47,189 unlabeled pairs, 1,380 steps
#   default       intermediate stage (3 epochs) then prediction stage (3 epochs): tinybert.config at this budget
#   att0, att01   the same with [tinybert] attention_weight = 0 / 0.1
#   tr_att1, tr_att0  intermediate stage on training + unlabeled pairs (690 steps), then prediction (3 epochs)
#   tr_both       intermediate on training + unlabeled pairs (690 steps), prediction on them too (690 steps)
#   tr_aug        intermediate on training pairs + their TinyBERT augmentation (AUG, tools/augment.py, the command in
#                 docs/RESULTS.md; 690 steps),
#                 then prediction on the training pairs (3 epochs): the paper's augmentation at tr_att1's budget
#   tr_aug_both   tr_aug, then prediction on the training pairs + augmentation too (345 steps; the teacher runs
#                 online, as a logit cache would first pass over all ~140k rows): the paper's recipe at this budget;
#                 it links tr_aug's intermediate stage of the same seed where that exists
# PRECISION=fp32 runs everything in fp32 (the default bf16 is what the RESULTS ablation ran; on a CPU without
# native bf16 it is several times slower than fp32).
set -euo pipefail
seed=$1; shift
T=${TEACHER:-runs/full_cpu/teachers/MRPC}; G=${GENERAL:-runs/full_cpu/general/tinybert}
X=${TRANSFER:-runs/transfer/MRPC.tsv}; R=${ROOT:-runs/abl/MRPC}; C=config/glue/MRPC
A=${AUG:-runs/aug/MRPC/train_aug.tsv}
COMMON=(--seed "$seed" --set output.tensorboard=false --set eval.latency_batches=0 --set "train.precision=${PRECISION:-bf16}"
        --set data.use_aug=false --set train.eval_steps=50)
if [[ -n ${GPU:-} ]]; then COMMON+=(--gpu "$GPU"); fi
TRANSFER_ROWS=(--set "data.transfer_file=$X")
AUG_ROWS=(--set data.use_aug=true --set "data.aug_file=$A")

run() { echo "+ python train.py $*"; python train.py "$@"; }
intermediate() {  # DIR, extra --set pairs
    local dir=$1; shift
    run --config $C/tinybert_intermediate.config --logdir "$dir/intermediate" "${COMMON[@]}" --set train.epoch=3 \
        --set "distill.teacher=$T" --set "model.pretrained=$G" "$@"
}
twin() {  # DIR, extra --set pairs: labels only from the general-distilled student
    local dir=$1; shift
    run --config $C/tinybert_baseline.config --logdir "$dir" "${COMMON[@]}" --do_test --set train.epoch=6 \
        --set "model.pretrained=$G" "$@"
}
prediction_alone() {  # DIR, extra --set pairs: the prediction stage from the general-distilled student
    local dir=$1; shift
    run --config $C/tinybert_prediction.config --logdir "$dir" "${COMMON[@]}" --do_test --set train.epoch=6 \
        --set "distill.teacher=$T" --set "model.pretrained=$G" "$@"
}
prediction() {  # DIR, extra --set pairs
    local dir=$1; shift
    run --config $C/tinybert_prediction.config --logdir "$dir/prediction" "${COMMON[@]}" --do_test --set train.epoch=3 \
        --set "distill.teacher=$T" --set "model.pretrained=$dir/intermediate/student" "$@"
}

for variant in "$@"; do
    D=$R/s$seed/$variant
    case $variant in
        twin) twin "$D" ;;
        twin1380) twin "$D" --set train.max_steps=1380 ;;
        pred_only) prediction_alone "$D" ;;
        pred_only_tr) prediction_alone "$D" "${TRANSFER_ROWS[@]}" --set train.max_steps=1380 ;;
        default) intermediate "$D"; prediction "$D" ;;
        att0) intermediate "$D" --set tinybert.attention_weight=0; prediction "$D" ;;
        att01) intermediate "$D" --set tinybert.attention_weight=0.1; prediction "$D" ;;
        tr_att1) intermediate "$D" "${TRANSFER_ROWS[@]}" --set train.max_steps=690; prediction "$D" ;;
        tr_att0) intermediate "$D" "${TRANSFER_ROWS[@]}" --set train.max_steps=690 --set tinybert.attention_weight=0
                 prediction "$D" ;;
        tr_both) intermediate "$D" "${TRANSFER_ROWS[@]}" --set train.max_steps=690
                 prediction "$D" "${TRANSFER_ROWS[@]}" --set train.max_steps=690 ;;
        tr_aug) intermediate "$D" "${AUG_ROWS[@]}" --set train.max_steps=690
                prediction "$D" ;;
        tr_aug_both) if [[ -d $R/s$seed/tr_aug/intermediate/student ]]; then  # the same command and seed: reuse it
                         mkdir -p "$D"; ln -sfn ../tr_aug/intermediate "$D/intermediate"
                     else intermediate "$D" "${AUG_ROWS[@]}" --set train.max_steps=690; fi
                     prediction "$D" "${AUG_ROWS[@]}" --set train.max_steps=345 \
                         --set distill.cache_teacher=false ;;
        *) echo "tinybert_ablation.sh: unknown variant '$variant'" >&2; exit 2 ;;
    esac
done
