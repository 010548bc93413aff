"""The run directory: resolved config, metrics.jsonl, tensorboard scalars, exported student, results.
Only rank 0 writes; every file is written to a temp name and renamed."""
import json
import os
import shutil
import tempfile
from pathlib import Path

from process.checkpoint import checkpoints_in
from utils.paths import swap_in
from utils.errors import ConfigError


def _existing_ancestor(path):
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable(logdir):
    """Fail before any work when the run directory cannot be created or written (nothing is created)."""
    anchor = _existing_ancestor(logdir)
    if not anchor.is_dir():
        raise ConfigError(f"--logdir {logdir}: {anchor} is a file, not a directory")
    try:
        tempfile.NamedTemporaryFile(dir=anchor, prefix=".kdw-write-test-").close()
    except OSError as err:
        raise ConfigError(f"--logdir {logdir}: not writable ({err.strerror})") from None


def _bytes_held(logdir, kept):
    """Bytes already in the run directory that a resumed run replaces rather than adds: its newest checkpoints,
    best.pt and the student export."""
    root = Path(logdir)
    files = checkpoints_in(root)[-kept:] + [root / "checkpoints" / "best.pt"]
    if (root / "student").is_dir():
        files += list((root / "student").rglob("*"))
    return sum(p.stat().st_size for p in files if p.is_file())


def check_free_space(logdir, checkpoint, best, export, kept):
    """Fail before training when the disk cannot hold the run directory at its peak: `kept` checkpoints plus the
    newest while it is written (pruning follows the write), best.pt and the export, or a second best.pt / export
    while one replaces the other (sizes in bytes). Files an earlier run left here are counted as paid for."""
    needed = kept * checkpoint + best + export + max(checkpoint, best, export) - _bytes_held(logdir, kept)
    free = shutil.disk_usage(_existing_ancestor(logdir)).free
    if free < needed:
        raise ConfigError(f"--logdir {logdir}: {_size(free)} free, the run needs about {_size(needed)} at its peak "
                          f"({kept + 1} checkpoints of {_size(checkpoint)} while the newest is written, best.pt "
                          f"{_size(best)}, the student export {_size(export)})")


def _size(size):
    """bytes, KiB, MiB or GiB, whichever reads best."""
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def prepare(logdir):
    """Create the run directory (after check_writable and the build have succeeded)."""
    path = Path(logdir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--logdir {logdir}: cannot create ({err.strerror})") from None
    return path


def write_text(path, text):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def keep_rows_up_to(path, step):
    """Rewrite metrics.jsonl (atomically) without the rows of steps after `step`, and without a line a kill cut
    short: what a stopped run logged past its checkpoint is logged again by the resumed run."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if (at := _step_of(line)) is not None and at <= step]
    if len(kept) != len(lines):
        write_text(path, "".join(line + "\n" for line in kept))


def _step_of(line):
    try:
        return json.loads(line).get("step")
    except (ValueError, AttributeError):
        return None


class MetricsLog:
    """metrics.jsonl lines plus tensorboardX scalars (optional), opened at the step the run starts from: rows and
    scalars of later steps (a stopped run's, past its checkpoint) are dropped, so every step appears once."""

    def __init__(self, logdir, tensorboard, start_step=0):
        self.path = Path(logdir) / "metrics.jsonl"
        keep_rows_up_to(self.path, start_step)
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # purge_step hides the event files' scalars from that step on
            self.writer = SummaryWriter(str(Path(logdir) / "tensorboard"), purge_step=start_step + 1)

    def write(self, record, prefix):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


def export_student(model, tokenizer, target):
    """Save the student in HF format to a temp dir, then swap it in place of `target`."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.export(str(tmp), tokenizer)
    except BaseException:  # a full disk or a kill signal: leave no half-written export behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_in(tmp, target)
