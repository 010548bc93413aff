"""The run directory: resolved config, metrics.jsonl, tensorboard scalars, exported student, results.
Only rank 0 writes; every file is written to a temp name and renamed."""
import json
import os
import shutil
import tempfile
from pathlib import Path

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


def check_free_space(logdir, needed_bytes):
    """Fail before training when the disk cannot hold a checkpoint (written next to the old one) and an export."""
    free = shutil.disk_usage(_existing_ancestor(logdir)).free
    if free < needed_bytes:
        raise ConfigError(f"--logdir {logdir}: {free / 2**20:.0f} MiB free, a checkpoint and an export need about "
                          f"{needed_bytes / 2**20:.0f} MiB")


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


class MetricsLog:
    """metrics.jsonl lines plus tensorboardX scalars (optional)."""

    def __init__(self, logdir, tensorboard):
        self.path = Path(logdir) / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(str(Path(logdir) / "tensorboard"))

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
    model.export(str(tmp), tokenizer)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
