"""Teacher-logit cache: one inference pass over the training split before training, in a fixed order and
batching, so every epoch reads the teacher's logits from memory instead of re-running the teacher.

The pass is canonical (examples sorted by text length, then index; [eval] batch_size), so a resumed run rebuilds exactly the same cache
and stays bitwise equal to an uninterrupted one. DDP ranks each compute a strided shard and exchange them.
With [distill] cache_dir set, the table is also kept on disk, keyed by the teacher's weights, the exact teacher-pass
batches (every tensor the teacher reads, not the labels or a student's own token ids) and the settings that change its numerics, so the seeds of a comparison, a
two-stage method's second stage and resumed runs read it instead of re-running the teacher.
Used only where the teacher's inputs are fixed per example (offline augmentation is; the logits of
hidden-state methods are not cached because they need the teacher's intermediate states anyway)."""
import hashlib
import time

import torch
from torch.utils.data import DataLoader

from model.base import teacher_inputs
from process.distributed import all_gather_objects
from process.embedding_cache import cached_embeddings, read_stored_table, store_table
from process.eval_process import to_device
from process.init_process import IndexedDataset, text_length
from utils.logging import get_logger
from utils.memory import peak_rss_mb
from utils.paths import resolve

FORMAT = 1


def wants_cache(run):
    model = run.model
    return (run.config.get("distill", "cache_teacher") and model.teacher is not None
            and model.caches_teacher_logits and not model.uses_hidden)


def teacher_batches(run):
    """This rank's teacher-pass batches: its strided shard of the training split, sorted by text length, then index.
    A loader, not a list: the key pass and the teacher pass each re-collate, so memory never holds them all. It has
    a generator of its own: each pass over a DataLoader draws a seed from it, and from the global RNG without one,
    so a cold cache (two passes) and a warm one (one) would leave dropout different random streams."""
    data = IndexedDataset(run.datasets["train"])
    mine = sorted(range(run.info.rank, len(data), run.info.world), key=lambda i: (text_length(data.inner[i]), i))
    loader = DataLoader(torch.utils.data.Subset(data, mine), batch_size=run.config.get("eval", "batch_size"),
                        shuffle=False, collate_fn=run.loaders["train"].collate_fn, generator=torch.Generator())
    return loader


def update_with_tensor(digest, name, tensor):
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def cache_key(run, batches):
    """sha256 of the teacher (class, config, parameters and buffers), every tensor the teacher reads in every rank's
    batches with the rows' indices (not the gold labels, nor a student's own ids: relabeled rows, and students with
    another tokenizer than the teacher's, share a table), and the settings that change the logits' rounding
    (precision, [CLS]-only last layer, device, world size, torch)."""
    digest = hashlib.sha256()
    for batch in batches:
        read = {**teacher_inputs(batch), "index": batch["index"]}
        for name in sorted(read):
            update_with_tensor(digest, name, read[name])
    shards = all_gather_objects(run.info, digest.hexdigest())
    model, config = run.model, run.config
    teacher = model.teacher
    architecture = teacher.config.to_json_string() if hasattr(teacher, "config") else ""
    # the teacher's class, config and weights, not the method's: KD and TinyBERT's prediction stage share a table
    digest = hashlib.sha256(f"v{FORMAT}|torch {torch.__version__}|{run.info.device.type}|world {run.info.world}|"
                            f"precision {config.get('train', 'precision')}|cls_only {model.cls_only}|"
                            f"{type(teacher).__name__}|{architecture}|{'|'.join(shards)}".encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        update_with_tensor(digest, name, tensor)
    return digest.hexdigest()


@torch.inference_mode()
def compute_logits(run, batches, size):
    """(size, labels) float tensor of the teacher's logits for every training example, by example index."""
    parts = []
    for batch in batches:
        batch = to_device(batch, run.info.device)
        parts.append((batch["index"].cpu(), run.model.teacher_forward(batch).float().cpu()))
    shards = all_gather_objects(run.info, parts)
    table = None
    for shard in shards:
        for index, logits in shard:
            if table is None:
                table = torch.empty(size, logits.shape[-1])
            table[index] = logits
    return table


def teacher_logits(run):
    """(N, labels) teacher logits by training-example index: read from [distill] cache_dir when this teacher has
    already run over exactly these batches, computed (and stored there) otherwise."""
    batches, size = teacher_batches(run), len(run.datasets["train"])  # iterated once for the key, once to compute
    cache_dir = run.config.get("distill", "cache_dir")
    if not cache_dir:
        return compute_logits(run, batches, size)
    path = resolve(cache_dir) / f"{cache_key(run, batches)}.pt"
    table = read_stored_table(run.info, path, "logits", "teacher-logit", size)
    if table is not None:
        get_logger(run.info.rank).info("teacher logits of %d training examples read from %s", size, path)
        return table
    table = compute_logits(run, batches, size)
    store_table(run.info, path, {"format": FORMAT, "count": size, "logits": table})
    return table


def teacher_table(run):
    """(len(texts), H) teacher sentence embeddings by text id for uses_teacher_table methods: the rows the loss reads
    come from the disk cache under [multilingual] cache_dir or one teacher pass (process/embedding_cache.py)."""
    model, data = run.model, run.datasets["train"]
    ids = model.teacher_table_rows(data)
    cache_dir = run.config.get("multilingual", "cache_dir")
    emb = cached_embeddings([data.texts[i] for i in ids], model.embed_texts, model.teacher_table_fingerprint(),
                            resolve(cache_dir) if cache_dir else None, run.info, run.config.get("eval", "batch_size"))
    table = torch.zeros(len(data.texts), emb.shape[-1])
    table[torch.tensor(ids)] = emb
    return table


def build_teacher_cache(run):
    """Hand the model what it reads of the teacher before the first step: the sentence-embedding table of
    uses_teacher_table methods, or the teacher-logit cache when [distill] cache_teacher allows it. Returns seconds spent."""
    if run.model.uses_teacher_table:
        run.model.set_teacher_table(teacher_table(run).to(run.info.device))
        return 0.0
    if not wants_cache(run):
        return 0.0
    start = time.perf_counter()
    run.model.set_teacher_cache(teacher_logits(run).to(run.info.device))
    spent = time.perf_counter() - start
    get_logger(run.info.rank).info("teacher logits cached for %d training examples in %.1f s (peak RSS so far %.0f MiB)",
                                   len(run.datasets["train"]), spent, peak_rss_mb())
    return spent
