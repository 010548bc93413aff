"""Checkpoints: the whole training state, written atomically (temp file + rename), keep-last-N.

Loaded with weights_only=True: no arbitrary objects are unpickled.
"""
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from utils.errors import CheckpointError

CKPT_RE = re.compile(r"^step-(\d+)\.pt$")


def rng_state():
    """Every RNG as plain Python values (lists, ints, bytes): safe for weights_only loading and all_gather_object."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state().numpy().tobytes()}
    if torch.cuda.is_available():
        state["cuda"] = [s.numpy().tobytes() for s in torch.cuda.get_rng_state_all()]
    return state


def _byte_tensor(data):
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def set_rng_state(state):
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_byte_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_byte_tensor(b) for b in state["cuda"]])


def atomic_save(obj, path):
    """torch.save to a temp file in the same directory, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def checkpoints_in(directory):
    """Checkpoint files of a run directory, oldest first."""
    directory = Path(directory) / "checkpoints"
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory) if (m := CKPT_RE.match(name))]
    return [p for _, p in sorted(found)]


def prune(directory, keep):
    for path in checkpoints_in(directory)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)


def resolve_checkpoint(path, prefer_best=False):
    """A checkpoint file, or a run directory -> its latest checkpoint (or best.pt when asked)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        best = path / "checkpoints" / "best.pt"
        if prefer_best and best.is_file():
            return best
        found = checkpoints_in(path)
        if found:
            return found[-1]
        raise CheckpointError(f"{path}: run directory has no checkpoints/step-*.pt")
    raise CheckpointError(f"{path}: checkpoint not found")


def load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
