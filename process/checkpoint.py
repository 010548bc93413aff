"""Checkpoints: the whole training state, written atomically (temp file + rename), keep-last-N.

Each file is torch.save's zip with the sha256 of its bytes as the zip comment, so a file verifies without anything
beside it; nothing that fails or lacks that proof is loaded, and what is loaded is read with weights_only=True (no
arbitrary objects are unpickled). The caches of process/embedding_cache.py use the same format.
"""
import contextlib
import errno
import hashlib
import io
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from utils.errors import CheckpointError, DiskFullError

CKPT_RE = re.compile(r"^step-(\d+)\.pt$")
# the temp names of atomic_save (tempfile's 8 random characters) for checkpoints, best.pt and older sidecars
TEMP_RE = re.compile(r"^\.(?:step-\d+\.pt|best\.pt)(?:\.json)?\.[a-z0-9_]{8}$")
EOCD, EOCD_SIZE = b"PK\x05\x06", 22  # a zip's end-of-central-directory record; its last 2 bytes: the comment's length
SEAL = b"KDW-sha256:"
SEAL_SIZE = len(SEAL) + 64  # the comment: SEAL + the hex sha256 of every byte before the comment
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
    """The sidecar of the older format that recorded a checkpoint's size and sha256: step-N.pt -> step-N.pt.json."""
    return Path(str(path) + ".json")


def seal(buffer):
    """Append the sha256 of torch.save's zip bytes (in `buffer`, a BytesIO) as the zip's comment, in place: the file
    then proves its own integrity, and torch.load still reads it (a comment belongs to no zip member)."""
    buffer.seek(0, io.SEEK_END)
    with buffer.getbuffer() as view:
        end = len(view) - EOCD_SIZE
        if end < 0 or view[end:end + 4] != EOCD or view[-2:] != b"\0\0":
            raise ValueError("torch.save did not end its zip archive with an empty comment")
        view[-2:] = SEAL_SIZE.to_bytes(2, "little")
        digest = hashlib.sha256(view).hexdigest()
    buffer.write(SEAL + digest.encode())


def disk_full_error(path, needed, err):
    """The one line for a save that ran out of disk space or quota: the file, the bytes it needed, the bytes free."""
    try:
        free = f"{shutil.disk_usage(Path(path).parent).free:,}"
    except OSError:
        free = "unknown"
    reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno in DISK_FULL else "No space left on device"
    return DiskFullError(f"{path}: {reason}: saving it needs {needed:,} bytes, {free} bytes are free; "
                         f"the files already there are intact (free space, then resume with --checkpoint)")


def is_disk_full(err):
    """ENOSPC / EDQUOT, also when a library wraps the OSError in its own exception (safetensors does, in its message)."""
    texts = [os.strerror(code) for code in DISK_FULL]
    while err is not None:
        if (isinstance(err, OSError) and err.errno in DISK_FULL) or any(t in str(err) for t in texts):
            return True
        err = err.__cause__ or err.__context__
    return False


def _write_atomic(path, data):
    """Write bytes to a temp file in the same directory, fsync, rename over `path`; on any failure the temp file is
    removed and `path` is left as it was."""
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
    """torch.save `obj` atomically, sealed with its sha256 (a kill at any moment leaves the old file or the new one,
    and a copy without its folder still verifies). A full disk raises DiskFullError; nothing is replaced then."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    seal(buffer)
    data = buffer.getbuffer()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        raise disk_full_error(path, len(data), err) from None
    finally:
        data.release()
    manifest_of(path).unlink(missing_ok=True)  # an older format's sidecar would only be stale now


def _sealed_digest(path, size):
    """The sha256 sealed at the end of `path` by atomic_save, or None when the file carries none."""
    if size < EOCD_SIZE + SEAL_SIZE:
        return None
    with open(path, "rb") as handle:
        handle.seek(size - EOCD_SIZE - SEAL_SIZE)
        tail = handle.read()
    eocd, comment = tail[:EOCD_SIZE], tail[EOCD_SIZE:]
    if eocd[:4] != EOCD or eocd[-2:] != SEAL_SIZE.to_bytes(2, "little") or not comment.startswith(SEAL):
        return None
    return comment[len(SEAL):].decode("ascii", "replace")


def _sha256_of(path, length):
    sha, left = hashlib.sha256(), length
    with open(path, "rb") as handle:
        while left > 0 and (block := handle.read(min(left, 1 << 22))):
            sha.update(block)
            left -= len(block)
    return sha.hexdigest()


def _verify_manifest(path, size, manifest_path):
    """A checkpoint of the older format: its size and sha256 against its sidecar."""
    try:
        manifest = json.loads(manifest_path.read_text())
        expected, digest = int(manifest["size"]), str(manifest["sha256"])
    except (ValueError, KeyError, TypeError, OSError):
        raise CheckpointError(f"{manifest_path}: unreadable checkpoint manifest") from None
    if size != expected:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (size {size} bytes, expected {expected})")
    if _sha256_of(path, size) != digest:
        raise CheckpointError(f"{path}: corrupt checkpoint (sha256 mismatch)")


def verify(path):
    """Raise CheckpointError unless the file proves its integrity: by the sha256 sealed at its end, or (files written
    before the seal) by its step-N.pt.json sidecar. What cannot be proven is never loaded."""
    path = Path(path)
    try:
        size = path.stat().st_size
        digest = _sealed_digest(path, size)
        if digest is not None:
            if _sha256_of(path, size - SEAL_SIZE) != digest:
                raise CheckpointError(f"{path}: corrupt checkpoint (sha256 mismatch)")
            return
        if not manifest_of(path).is_file():
            raise CheckpointError(f"{path}: truncated or unverifiable checkpoint (size {size} bytes, no sha256 seal "
                                  f"at its end and no {manifest_of(path).name})")
        _verify_manifest(path, size, manifest_of(path))
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err.strerror})") from None


def tensor_bytes(obj):
    """Bytes of the tensors in a nested state (dicts, lists, tuples): about what torch.save writes for it."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        obj = list(obj.values())
    return sum(tensor_bytes(v) for v in obj) if isinstance(obj, (list, tuple)) else 0


def optimizer_state_bytes(optimizer):
    """The optimizer's per-parameter state once it has stepped (Adam creates its moments at the first step, so a
    fresh one is estimated): Adam/AdamW 2 tensors per parameter (3 with amsgrad), SGD 1 with momentum."""
    params = sum(tensor_bytes(p) for group in optimizer.param_groups for p in group["params"])
    if isinstance(optimizer, torch.optim.SGD):
        factor = 1 if optimizer.defaults.get("momentum") else 0
    else:
        factor = 2 + bool(optimizer.defaults.get("amsgrad"))
    return max(factor * params, tensor_bytes(optimizer.state_dict()["state"]))


def checkpoints_in(directory):
    """Checkpoint files of a run directory, oldest first."""
    directory = Path(directory) / "checkpoints"
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory) if (m := CKPT_RE.match(name))]
    return [p for _, p in sorted(found)]


def delete_checkpoint(path):
    """A step checkpoint and the sidecar of the older format, if any."""
    path.unlink(missing_ok=True)
    manifest_of(path).unlink(missing_ok=True)


def prune(directory, keep):
    """Keep the newest `keep` checkpoints (all when keep <= 0), and sweep the temp files of interrupted saves."""
    for path in checkpoints_in(directory)[:-keep] if keep > 0 else []:
        delete_checkpoint(path)
    remove_stale_temps(directory)


def remove_stale_temps(directory):
    """Delete what saves killed mid-write left in a run's checkpoints folder (.step-N.pt.XXXXXXXX, .best.pt.XXXXXXXX):
    only names atomic_save makes, only in that folder. Only the run's one writer may call it, between its saves.
    Returns the bytes freed."""
    folder = Path(directory) / "checkpoints"
    freed = 0
    for name in os.listdir(folder) if folder.is_dir() else []:
        if TEMP_RE.match(name):
            with contextlib.suppress(OSError):
                size = (folder / name).stat().st_size
                (folder / name).unlink()
                freed += size
    return freed


def _first_good(candidates, warn):
    """The newest candidate that verifies and loads; each bad one is reported on one line."""
    for path in reversed(candidates):
        try:
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
    """The checkpoint's contents once verify() has proven the file intact; weights_only: tensors and plain containers."""
    verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
