"""TextBrewer's GeneralDistiller on the same job, set up the way its examples do: inputs padded to a fixed
max length (64), a shuffled DataLoader, soft cross-entropy at T=1 (same gradient as KL) and, for the hidden
variant, `hidden_mse` intermediate matches on job['pairs'] (hidden_states indices; 6 -> 2 layers: 1,2 <- 3,6)
with the attention mask."""
import random
import tempfile

import torch

from benchmarks.common import (StepClock, dev_probe, encode, finish, fixed_batches, linear_decay, load_models, mean_length,
                               no_decay_groups, read_tsv)


def available():
    try:
        import textbrewer  # noqa: F401
        return True
    except ImportError:
        return False


def adaptor(batch, out):
    return {"logits": out.logits, "hidden": out.hidden_states, "inputs_mask": batch["attention_mask"]}


def run(job):
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    torch.manual_seed(job["seed"])
    teacher, student, tokenizer = load_models(job)
    rows = read_tsv(job["train"], job["examples"])
    if job["mode"] == "same_batches":
        batches = fixed_batches(tokenizer, rows, job["batch_size"])
    else:  # as its examples: everything padded to max_seq_length, a shuffled loader
        order = list(range(len(rows)))
        random.Random(job["seed"]).shuffle(order)
        batches = [encode(tokenizer, [rows[i] for i in order[k:k + job["batch_size"]]], "max_length")
                   for k in range(0, len(order), job["batch_size"])]
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in batches]
    hidden = job["loss"] == "kd_hidden"
    matches = [{"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "hidden_mse", "weight": 1}
               for s, t in job["pairs"]] if hidden else []
    out_dir = tempfile.mkdtemp(prefix="tb_")
    train_config = TrainingConfig(device="cpu", log_dir=out_dir, output_dir=out_dir, ckpt_steps=10 ** 9)
    distill_config = DistillationConfig(temperature=1, kd_loss_type="ce", kd_loss_weight=1, hard_label_weight=0,
                                        intermediate_matches=matches)
    distiller = GeneralDistiller(train_config, distill_config, teacher, student, adaptor, adaptor)
    optimizer = torch.optim.AdamW(no_decay_groups(student), lr=job["lr"])
    clock = StepClock(optimizer, *dev_probe(job, student, tokenizer))
    extra = {"output_hidden_states": True} if hidden else {}
    with distiller:
        distiller.train(optimizer, batches, num_steps=job["steps"], scheduler_class=torch.optim.lr_scheduler.LambdaLR,
                        scheduler_args={"lr_lambda": linear_decay(job["steps"])}, max_grad_norm=1.0, **extra)
    return finish(job, clock, student, tokenizer, {"mean_padded_length": mean_length(batches, job["steps"])})
