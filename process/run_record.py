"""A log dir belongs to one run: the config that made it is recorded there (values and their sha256), and a new
run, a resume or a pipeline stage whose config differs is refused before anything is written. --overwrite starts
afresh by moving the old run aside whole. docs/RUNNING.md, "The run directory", says what is allowed."""
import hashlib
import json
import os
import time
from pathlib import Path

from init.ini import read_ini
from process.checkpoint import CKPT_RE, checkpoints_in, manifest_of
from process.run_dir import write_json
from utils.errors import ConfigError
from utils.paths import run_dir_of
from utils.logging import get_logger

RECORD = "run_config.json"  # not config.json: a run directory given as a model path is read as an HF model by that name
RESUMABLE_HINT = "only keys marked resumable in config/default.config may change"


def fingerprint(texts):
    """sha256 of the config's values alone (canonical JSON: no comments, no sources, key order irrelevant)."""
    return hashlib.sha256(json.dumps(texts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_record(logdir, texts):
    """Record the run's config in its directory (atomically: temp file + rename)."""
    write_json(Path(logdir) / RECORD, {"sha256": fingerprint(texts), "config": texts})


def _from_record(path):
    record = json.loads(path.read_text(encoding="utf-8"))
    texts = record["config"]
    if not isinstance(texts, dict) or record["sha256"] != fingerprint(texts):
        raise ValueError("its sha256 does not match its values")
    return texts


def _from_config_ini(path):
    """A directory made before configs were recorded: its config.ini holds the values. Those the code resolved from
    the data at run time ('# from pipeline', e.g. num_labels) were not the user's, so they are left out."""
    return {section: {key: entry.value for key, entry in entries.items() if entry.comment != "from pipeline"}
            for section, entries in read_ini(path).items() if section != "config"}


def recorded(directory):
    """(values {section: {key: text}}, file) of the run in `directory`, or None when no run config is there."""
    directory = Path(directory)
    path = directory / RECORD
    if path.is_file():
        try:
            return _from_record(path), path
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: unreadable run record ({err}); use another --logdir, or --overwrite to "
                              "move that run aside") from None
    if (directory / "config.ini").is_file():
        return _from_config_ini(directory / "config.ini"), directory / "config.ini"
    return None


def first_difference(texts, old, schema, resumable=False):
    """(section, key, now, then) of the first key, in default.config order, whose value differs from the recorded
    one and may not change on resume (resumable=True: one that may); keys one side does not know (another
    version's schema) are skipped."""
    for section, keys in schema.items():
        for key, spec in keys.items():
            now, then = texts.get(section, {}).get(key), old.get(section, {}).get(key)
            if spec.resumable == resumable and now is not None and then is not None and now != then:
                return section, key, now, then
    return None


def _inside(path, directory):
    path, directory = Path(path).resolve(), Path(directory).resolve()
    return path == directory or directory in path.parents


def check_run_dir(config, texts, logdir, checkpoint=None, overwrite=False):
    """Refuse, before any write, a run whose config differs from the one recorded in its log dir (unless --overwrite
    moves that aside) or in the run it resumes, and a new run into a directory that already holds checkpoints.
    `texts` is config.texts()."""
    source_dir = run_dir_of(checkpoint) if checkpoint else None
    if overwrite:
        check_overwrite(logdir, checkpoint)
    places = ([] if overwrite else [Path(logdir)]) + ([source_dir] if source_dir else [])
    for directory in {p.resolve(): p for p in reversed(places)}.values():
        found = recorded(directory)
        diff = found and first_difference(texts, found[0], config.schema)
        if diff:
            section, key, now, then = diff
            how = (f"{RESUMABLE_HINT} on resume (--overwrite starts afresh)" if checkpoint else
                   "a log dir holds one run: use another --logdir, or --overwrite to move the old run aside")
            source = config.source(section, key)
            raise ConfigError(("" if source == "default" else f"{source}: ") + f"[{section}] {key} = {now}, but the "
                              f"run in {directory} has {then} ({found[1].name}); {how}")
    held = checkpoints_in(logdir)
    if not checkpoint and not overwrite and held:
        raise ConfigError(f"--logdir {logdir}: already holds a run (checkpoints up to {held[-1].name}); continue it "
                          f"with --checkpoint {logdir}, or start afresh with --overwrite (the old run is moved aside)")


def check_overwrite(logdir, checkpoint):
    """--overwrite moves the log dir aside: it must not hold the checkpoint resumed from, nor the current directory."""
    if checkpoint and _inside(checkpoint, logdir):
        raise ConfigError(f"--overwrite moves {logdir} aside to start afresh, so it cannot resume from "
                          f"--checkpoint {checkpoint} in it; drop one of the two")
    if _inside(Path.cwd(), logdir):
        raise ConfigError(f"--logdir {logdir}: --overwrite would move the current directory aside")


def move_aside(logdir):
    """--overwrite: rename the old run to DIR.old-<time> beside it, whole. Beside rather than inside the new run, so
    nothing of it mixes into the new one (checkpoints_in, test.py and pipelines never see it) and a later --overwrite
    does not nest it; a rename on one filesystem is atomic and copies nothing. Returns the new name or None."""
    path = Path(logdir)
    if not path.is_dir() or not any(path.iterdir()):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{path.name}.old-{stamp}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.old-{stamp}-{n}")
    os.rename(path, target)
    get_logger().info("--overwrite: the earlier run in %s is now in %s", path, target)
    return target


def forget_after(logdir, step):
    """Resuming from step N: checkpoints of later steps belong to the timeline being replaced; a later --checkpoint
    DIR must not pick one of them up, so they are deleted (metrics rows: run_dir.MetricsLog)."""
    for path in checkpoints_in(logdir):
        if int(CKPT_RE.match(path.name).group(1)) > step:
            path.unlink(missing_ok=True)
            manifest_of(path).unlink(missing_ok=True)
            get_logger().info("%s: dropped, the run resumes from step %d", path, step)
