"""Teacher-logit cache: one inference pass over the training split before training, in a fixed order and
batching, so every epoch reads the teacher's logits from memory instead of re-running the teacher.

The pass is canonical (examples sorted by text length, then index; [eval] batch_size), so a resumed run rebuilds exactly the same cache
and stays bitwise equal to an uninterrupted one. DDP ranks each compute a strided shard and exchange them.
Used only where the teacher's inputs are fixed per example (offline augmentation is; the logits of
hidden-state methods are not cached because they need the teacher's intermediate states anyway)."""
import time

import torch
from torch.utils.data import DataLoader

from process.distributed import all_gather_objects
from process.eval_process import to_device
from process.init_process import IndexedDataset, text_length
from utils.logging import get_logger


def wants_cache(run):
    model = run.model
    return (run.config.get("distill", "cache_teacher") and model.teacher is not None
            and getattr(model, "caches_teacher_logits", False) and not getattr(model, "uses_hidden", False))


@torch.inference_mode()
def teacher_logits(run):
    """(N, labels) float tensor of the teacher's logits for every training example, by example index."""
    data = IndexedDataset(run.datasets["train"])
    mine = sorted(range(run.info.rank, len(data), run.info.world), key=lambda i: (text_length(data.inner[i]), i))
    loader = DataLoader(torch.utils.data.Subset(data, mine), batch_size=run.config.get("eval", "batch_size"),
                        shuffle=False, collate_fn=run.loaders["train"].collate_fn)
    parts = []
    for batch in loader:
        batch = to_device(batch, run.info.device)
        parts.append((batch["index"].cpu(), run.model.teacher_forward(batch).float().cpu()))
    shards = all_gather_objects(run.info, parts)
    table = None
    for shard in shards:
        for index, logits in shard:
            if table is None:
                table = torch.empty(len(data), logits.shape[-1])
            table[index] = logits
    return table


def build_teacher_cache(run):
    """Fill the model's teacher-logit cache when [distill] cache_teacher allows it; returns seconds spent."""
    prepare = getattr(run.model, "prepare_teacher", None)
    if prepare is not None:  # methods with their own teacher-output cache (model/multistage.py, sentence embeddings)
        return prepare(run)
    if not wants_cache(run):
        return 0.0
    start = time.perf_counter()
    run.model.set_teacher_cache(teacher_logits(run).to(run.info.device))
    spent = time.perf_counter() - start
    get_logger(run.info.rank).info("teacher logits cached for %d training examples in %.1f s",
                                   len(run.datasets["train"]), spent)
    return spent
