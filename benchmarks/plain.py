"""The hand-written PyTorch loop: what a user writes without a framework (teacher under no_grad,
torch.optim.AdamW with its defaults, loss.item() logged every step)."""
import random

import torch

from benchmarks.common import (StepClock, dev_probe, encode, finish, fixed_batches, kd_terms, linear_decay, load_models,
                               mean_length, no_decay_groups, read_tsv)

def batches_as_shipped(tokenizer, rows, batch_size, seed):
    """Shuffled batches, each padded to its longest row (tokenizer padding=True)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [encode(tokenizer, [rows[i] for i in order[k:k + batch_size]], "longest")
            for k in range(0, len(order), batch_size)]


def run(job):
    torch.manual_seed(job["seed"])
    teacher, student, tokenizer = load_models(job)
    rows = read_tsv(job["train"], job["examples"])
    batches = (fixed_batches(tokenizer, rows, job["batch_size"]) if job["mode"] == "same_batches"
               else batches_as_shipped(tokenizer, rows, job["batch_size"], job["seed"]))
    steps, hidden = job["steps"], job["loss"] == "kd_hidden"
    optimizer = torch.optim.AdamW(no_decay_groups(student), lr=job["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(steps))
    clock = StepClock(optimizer, *dev_probe(job, student, tokenizer))
    student.train()
    losses = []
    for step in range(steps):
        batch = dict(batches[step % len(batches)])
        batch.pop("labels")
        with torch.no_grad():
            t_out = teacher(**batch, output_hidden_states=hidden)
        s_out = student(**batch, output_hidden_states=hidden)
        loss = kd_terms(s_out, t_out, batch["attention_mask"], hidden, job["pairs"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return finish(job, clock, student, tokenizer, {"first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
                                                   "mean_padded_length": mean_length(batches, steps)})
