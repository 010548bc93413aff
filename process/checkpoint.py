"""Checkpoints: the whole training state, written atomically (temp file + rename), keep-last-N.

Loaded with weights_only=True: no arbitrary objects are unpickled.
"""
import hashlib
import io
import json
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


def manifest_of(path):
    """The sidecar that records a checkpoint's size and sha256: step-N.pt -> step-N.pt.json."""
    return Path(str(path) + ".json")


def _write_atomic(path, data):
    """Write bytes to a temp file in the same directory, fsync, rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path):
    """torch.save `obj` atomically; its manifest (size, sha256) is written first, so a checkpoint
    that exists always has one, and a kill at any moment leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    manifest = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    _write_atomic(manifest_of(path), json.dumps(manifest).encode())
    _write_atomic(path, data)


def verify(path):
    """Raise CheckpointError when a checkpoint's size or hash disagrees with its manifest."""
    path = Path(path)
    manifest_path = manifest_of(path)
    if not manifest_path.is_file():
        return  # written elsewhere: loading it is the only check
    try:
        manifest = json.loads(manifest_path.read_text())
        size, digest = int(manifest["size"]), str(manifest["sha256"])
    except (ValueError, KeyError, TypeError, OSError):
        raise CheckpointError(f"{manifest_path}: unreadable checkpoint manifest") from None
    actual = path.stat().st_size
    if actual != size:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (size {actual} bytes, expected {size})")
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            sha.update(block)
    if sha.hexdigest() != digest:
        raise CheckpointError(f"{path}: corrupt checkpoint (sha256 mismatch)")


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
        manifest_of(path).unlink(missing_ok=True)


def _first_good(candidates, warn):
    """The newest candidate that verifies and loads; each bad one is reported on one line."""
    for path in reversed(candidates):
        try:
            verify(path)
            return path, load_checkpoint(path)
        except CheckpointError as err:
            warn(f"{err}; trying the previous checkpoint")
    return None, None


def find_checkpoint(path, prefer_best=False, warn=print):
    """(path, state) for --checkpoint: a file, or a run directory's latest step-N.pt (best.pt when
    asked). A truncated or corrupt file is reported and the previous good checkpoint is used."""
    path = Path(path)
    if path.is_dir():
        candidates = checkpoints_in(path)
        best = path / "checkpoints" / "best.pt"
        if prefer_best and best.is_file():
            candidates = candidates + [best]
        if not candidates:
            raise CheckpointError(f"{path}: run directory has no checkpoints/step-*.pt")
    elif path.is_file():
        match = CKPT_RE.match(path.name)
        older = [p for p in checkpoints_in(path.parent.parent) if match and int(CKPT_RE.match(p.name).group(1)) < int(match.group(1))] \
            if path.parent.name == "checkpoints" else []
        candidates = older + [path]
    else:
        raise CheckpointError(f"{path}: checkpoint not found")
    found, state = _first_good(candidates, warn)
    if found is None:
        raise CheckpointError(f"{path}: no intact checkpoint to resume from")
    return found, state


def resolve_checkpoint(path, prefer_best=False):
    """Just the path that find_checkpoint would use."""
    return find_checkpoint(path, prefer_best, warn=lambda msg: None)[0]


def load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
