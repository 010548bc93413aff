"""Teacher sentence-embedding cache for the multilingual methods: the teacher embeds each distinct sentence
once per run (not once per epoch, per language pair or per rank), and the table is kept on disk, keyed by
content, so resumed runs and later stages with the same teacher and data reuse it.

Key = sha256 of the teacher's fingerprint (its weight files and settings) and the exact list of texts. DDP ranks
each embed a strided shard, exchange shards, and rank 0 writes the file atomically (temp name + rename); a run
that finds the file loads it and computes nothing. The pass is canonical (texts sorted by length, fixed batch
size), so a recomputed table equals a loaded one and resumed runs stay bitwise equal."""
import hashlib
from pathlib import Path

import torch

from process.checkpoint import atomic_save, load_checkpoint
from process.distributed import all_gather_objects, barrier
from utils.errors import CheckpointError
from utils.logging import get_logger

FORMAT = 1


def cache_key(fingerprint, texts):
    digest = hashlib.sha256(f"v{FORMAT}\n{fingerprint}\n".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def embed_in_order(embed, texts, batch_size):
    """(n, H) float32 CPU embeddings of `texts`, computed in length-sorted batches (less padding, fixed order)."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    out = None
    for start in range(0, len(order), batch_size):
        ids = order[start:start + batch_size]
        emb = embed([texts[i] for i in ids]).float().cpu()
        if out is None:
            out = torch.empty(len(texts), emb.shape[-1])
        out[torch.tensor(ids)] = emb
    return out if out is not None else torch.empty(0, 0)


def stored_table(path, field, rows):
    """`field` of a cache file, checked: sealed and intact (process/checkpoint.py), loaded without unpickling any
    object, a dict whose `field` is a float (rows, width) tensor. Raises CheckpointError otherwise."""
    stored = load_checkpoint(path)
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: holds a {type(stored).__name__}, not a cache table")
    table = stored.get(field)
    if not (torch.is_tensor(table) and table.is_floating_point() and table.dim() == 2 and len(table) == rows
            and stored.get("count") == rows):
        shape = tuple(table.shape) if torch.is_tensor(table) else type(table).__name__
        raise CheckpointError(f"{path}: '{field}' is {shape}, expected a float table of {rows} rows")
    return table


def read_stored_table(info, path, field, what, rows):
    """`field` of a cache file written by atomic_save, or None when there is none or it is unusable: a damaged,
    unverifiable or wrong file is recomputed (and rewritten) after a one-line warning, never fatal, never executed.
    Rank 0 decides whether it exists, so every rank takes the same branch."""
    if not all_gather_objects(info, path.is_file())[0]:
        return None
    try:
        return stored_table(path, field, rows)
    except CheckpointError as err:
        why = str(err).removeprefix(f"{path}: ")
        get_logger(info.rank).warning("%s: unusable %s cache (%s); recomputing", path, what, why.splitlines()[0][:200])
        return None


def store_table(info, path, payload):
    """Rank 0 writes the cache file atomically (temporary name, then rename); every rank waits for it."""
    if info.is_main:
        atomic_save(payload, path)
    barrier(info)


def cached_embeddings(texts, embed, fingerprint, cache_dir, info, batch_size=64):
    """(len(texts), H) teacher embeddings of `texts` (distinct strings), from the disk cache when present; with
    cache_dir None (an empty [multilingual] cache_dir) computed every run and kept nowhere on disk."""
    logger = get_logger(info.rank)
    path = Path(cache_dir) / f"{cache_key(fingerprint, texts)}.pt" if cache_dir is not None else None
    table = read_stored_table(info, path, "embeddings", "teacher-embedding", len(texts)) if path else None
    if table is not None:
        logger.info("teacher embeddings of %d sentences read from %s", len(texts), path)
        return table
    mine = list(range(info.rank, len(texts), info.world))
    part = embed_in_order(embed, [texts[i] for i in mine], batch_size)
    shards = all_gather_objects(info, (mine, part))
    width = max(p.shape[-1] for _, p in shards if p.numel())
    table = torch.empty(len(texts), width)
    for ids, emb in shards:
        if ids:
            table[torch.tensor(ids)] = emb
    if path is None:
        logger.info("teacher embedded %d distinct sentences (no disk cache: [multilingual] cache_dir is empty)", len(texts))
        return table
    store_table(info, path, {"format": FORMAT, "count": len(texts), "embeddings": table})
    logger.info("teacher embedded %d distinct sentences; cached in %s", len(texts), path)
    return table
