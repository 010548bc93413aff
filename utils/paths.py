"""Path resolution: config paths are relative to the repo (or to data.root), never machine-specific."""
import os
import shutil
from pathlib import Path

from utils.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve(path, base=REPO_ROOT):
    """Absolute Path for a config value: absolute stays, relative is taken from `base`."""
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else (Path(base) / p).resolve()


def data_root(config):
    """The data root: data.root resolved from the repo root (empty = the repo root)."""
    root = config.get("data", "root")
    return resolve(root) if root else REPO_ROOT


def data_file(config, mode):
    """Path of the `mode` split (train/valid/test) from data.<mode>_file, relative to data.root."""
    name = config.get("data", f"{mode}_file")
    if not name:
        raise ConfigError(f"[data] {mode}_file: required for mode '{mode}' but empty")
    return resolve(name, data_root(config))


def run_dir_of(checkpoint):
    """The run directory a --checkpoint belongs to (itself, or DIR for DIR/checkpoints/step-N.pt), or None."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else None


def repo_relative(text):
    """A 'path[:line]' inside the repository shown relative to it, so a run's records name no machine's folders."""
    prefix = str(REPO_ROOT) + "/"
    return text[len(prefix):] if str(text).startswith(prefix) else text


def swap_in(folder, target):
    """Replace the folder `target` by `folder` with renames only, so no reader sees a half-written one."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(folder, target)
    shutil.rmtree(old, ignore_errors=True)
