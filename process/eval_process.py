"""Evaluation on one or many ranks: each rank runs its shard, predictions are gathered and
de-duplicated by example index, and every rank gets the same metrics."""
import contextlib

import numpy as np
import torch

from process.distributed import all_gather_objects
from utils.errors import DataError
from utils.precision import precision_dtype
from efficiency.perf import Throughput


def autocast(run):
    dtype = precision_dtype(run.config)
    return contextlib.nullcontext() if dtype == torch.float32 else torch.autocast(run.info.device.type, dtype=dtype)


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.inference_mode()
def predict(run, split):
    """(indices, logits, labels or None, summed loss, count) of this rank's shard."""
    model = run.model
    was_training = model.training
    model.eval()
    indices, logits, labels, loss_sum, count = [], [], [], 0.0, 0
    perf = run.eval_perf = Throughput()  # examples/s of this pass, for the efficiency report
    for batch in run.loaders[split]:
        perf.count(batch)
        batch = to_device(batch, run.info.device)
        with autocast(run):
            out = model(batch)
        n = batch["index"].numel()
        indices.append(batch["index"].cpu())
        logits.append(out["logits"].float().cpu())
        if "labels" in batch:
            labels.append(out.get("eval_labels", batch["labels"]).cpu())  # MLM methods: per-example, not (B, L)
            loss_sum += float(out["loss"]) * n
        count += n
    perf.stop()
    model.train(was_training)
    cat = lambda xs: torch.cat(xs).numpy() if xs else None
    return cat(indices), cat(logits), cat(labels), loss_sum, count


def evaluate(run, split="valid"):
    """(metrics, logits, labels) of a split, in example order and identical on every rank; metrics include the loss
    when the split has labels, labels is None when it has none."""
    parts = all_gather_objects(run.info, predict(run, split))
    index = np.concatenate([p[0] for p in parts])
    order = np.unique(index, return_index=True)[1]
    logits = np.concatenate([p[1] for p in parts])[order]
    metrics = {"examples": int(len(order))}
    if parts[0][2] is None:
        return metrics, logits, None
    labels = np.concatenate([p[2] for p in parts])[order]
    if len(labels) == 0:
        raise DataError(f"[data] {split}_file: no examples to evaluate")
    metrics.update({k: round(float(v), 6) for k, v in run.evaluator(logits, labels).items()})
    metrics["loss"] = round(sum(p[3] for p in parts) / max(1, sum(p[4] for p in parts)), 6)
    return metrics, logits, labels
