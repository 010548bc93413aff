"""A log dir belongs to one run (process/run_record.py): a differing config is refused before any write, a resume
may change only resumable keys, --overwrite moves the old run aside; a resumed run logs each step once."""
import json
import os
import struct
import subprocess
import sys

import pytest

from init.config import load_config
from process.checkpoint import checkpoints_in
from process.distributed import DistInfo
from process.pipeline import run_pipeline
from process.run_record import RECORD, check_run_dir, fingerprint
from process.train_entry import train_run
from tests.helpers import REPO, tiny_config_text
from utils.errors import ConfigError

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def write(tmp_path, name, tiny_model, tiny_data, **train):
    path = tmp_path / f"{name}.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1, "save_steps": 2, "keep_last": 3, **train},
                                     eval={"latency_batches": 0}))
    return path


def train(path, logdir, checkpoint=None, overrides=(), overwrite=False):
    return train_run(load_config(path, overrides), DistInfo(), str(logdir), checkpoint, overwrite=overwrite)


def snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


@pytest.fixture
def finished(tmp_path, tiny_model, tiny_data):
    """A finished 6-step run (checkpoints at 2, 4, 6) and its config file."""
    path = write(tmp_path, "run", tiny_model, tiny_data)
    train(path, tmp_path / "run")
    return path, tmp_path / "run"


def test_a_second_run_with_another_config_exits_2_on_one_line_and_writes_nothing(tmp_path, finished):
    path, logdir = finished
    before = snapshot(logdir)
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(path), "--logdir", str(logdir),
                           "--set", "train.learning_rate=1e-2", "--set", "train.max_steps=4"],
                          capture_output=True, text=True, timeout=120, env=ENV, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: --set train.learning_rate: [train] learning_rate = 0.01, but the run in {logdir} has 0.001 "
        f"({RECORD}); a log dir holds one run: use another --logdir, or --overwrite to move the old run aside"]
    assert snapshot(logdir) == before  # best.pt, student/, config.ini and the checkpoints untouched
    assert not list(tmp_path.glob("run.old-*"))


def test_the_record_is_the_values_alone(tmp_path, finished):
    path, logdir = finished
    record = json.loads((logdir / RECORD).read_text())
    config = load_config(path)
    assert record == {"sha256": fingerprint(config.texts()), "config": config.texts()}
    # the same values from another file, with comments and through a base: the same hash
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.config").write_text("# a comment\n[config]\nbase = ../run.config\n; another\n")
    assert fingerprint(load_config(tmp_path / "sub" / "other.config").texts()) == record["sha256"]
    assert fingerprint(load_config(path, ["train.seed=7"]).texts()) != record["sha256"]


def test_the_same_config_again_without_checkpoint_is_refused_not_mixed(finished):
    path, logdir = finished
    with pytest.raises(ConfigError, match=rf"--logdir {logdir}: already holds a run \(checkpoints up to "
                                          r"step-0000006.pt\); continue it with --checkpoint"):
        train(path, logdir)


def test_resume_may_change_resumable_keys_only(finished):
    path, logdir = finished
    with pytest.raises(ConfigError, match=r"\[train\] learning_rate = 0.01, but the run in .* has 0.001 "
                                          r"\(run_config.json\); only keys marked resumable"):
        train(path, logdir, str(logdir), ["train.learning_rate=1e-2"])
    elsewhere = logdir.parent / "elsewhere"  # a step-N.pt file names the run it belongs to
    with pytest.raises(ConfigError, match=rf"\[train\] seed = 7, but the run in {logdir} has 42"):
        train(path, elsewhere, str(checkpoints_in(logdir)[-1]), ["train.seed=7"])
    assert not elsewhere.exists()
    summary = train(path, logdir, str(logdir), ["train.epoch=2", "train.logging_steps=3", "train.keep_last=2"])
    assert summary["steps"] == 12  # extended: epoch and the cadences are resumable
    assert json.loads((logdir / RECORD).read_text())["config"]["train"]["epoch"] == "2"


def test_overwrite_moves_the_old_run_aside_whole(tmp_path, finished):
    path, logdir = finished
    old = snapshot(logdir)
    train(path, logdir, overrides=["train.learning_rate=1e-2", "train.max_steps=4"], overwrite=True)
    [aside] = tmp_path.glob("run.old-*")
    assert {p.relative_to(aside): v for p, v in snapshot(aside).items()} == {p.relative_to(logdir): v for p, v in old.items()}
    assert [p.name for p in checkpoints_in(logdir)] == ["step-0000002.pt", "step-0000004.pt"]  # the new run's only
    assert json.loads((logdir / RECORD).read_text())["config"]["train"]["learning_rate"] == "0.01"
    with pytest.raises(ConfigError, match="cannot resume from --checkpoint"):
        train(path, logdir, str(logdir), overwrite=True)


def test_a_directory_without_a_record_is_compared_through_its_config_ini(finished):
    path, logdir = finished
    (logdir / RECORD).unlink()  # as an older version left it; its config.ini says num_labels = 2 "from pipeline"
    config = load_config(path)
    check_run_dir(config, config.texts(), str(logdir), str(logdir))  # the same config: resumable
    config = load_config(path, ["distill.temperature=2"])
    with pytest.raises(ConfigError, match=r"\[distill\] temperature = 2.0, but the run in .* has 1.0 \(config.ini\)"):
        check_run_dir(config, config.texts(), str(logdir), str(logdir))


def test_a_pipeline_whose_stage_config_changed_is_refused_not_skipped(tmp_path, tiny_model, tiny_data):
    write(tmp_path, "a", tiny_model, tiny_data)
    (tmp_path / "p.config").write_text("[pipeline]\nstages = a\n[stage.a]\nconfig = a.config\n")
    logdir = tmp_path / "runs"
    run_pipeline(tmp_path / "p.config", DistInfo(), str(logdir))
    before = snapshot(logdir)
    with pytest.raises(ConfigError, match=r"--set train.learning_rate: \[train\] learning_rate = 0.01, but the run in "
                                          rf"{logdir / 'a'} has 0.001"):
        run_pipeline(tmp_path / "p.config", DistInfo(), str(logdir), ["train.learning_rate=1e-2"])
    assert snapshot(logdir) == before
    summaries = run_pipeline(tmp_path / "p.config", DistInfo(), str(logdir), ["train.learning_rate=1e-2"], overwrite=True)
    assert summaries["a"]["steps"] == 6 and len(list(tmp_path.glob("runs.old-*"))) == 1
    assert json.loads((logdir / "a" / RECORD).read_text())["config"]["train"]["learning_rate"] == "0.01"


def session_starts(logdir):
    """Steps of the session-start events in the tensorboardX event files (TFRecords: length, crc, event, crc)."""
    from tensorboardX.proto.event_pb2 import Event
    starts = []
    for path in sorted((logdir / "tensorboard").iterdir()):
        data = path.read_bytes()
        while data:
            (length,) = struct.unpack("<Q", data[:8])
            event = Event.FromString(data[12:12 + length])
            data = data[12 + length + 4:]
            if event.HasField("session_log"):
                starts.append(event.step)
    return starts


def test_resume_from_an_earlier_checkpoint_logs_each_step_once(tmp_path, tiny_model, tiny_data):
    path = write(tmp_path, "run", tiny_model, tiny_data, epoch=2, keep_last=100)
    path.write_text(path.read_text().replace("tensorboard = false", "tensorboard = true"))
    logdir = tmp_path / "run"
    train(path, logdir)  # 12 steps, logged 1..12, checkpoints 2, 4, ..., 12
    train(path, logdir, str(logdir / "checkpoints" / "step-0000004.pt"), ["train.max_steps=8"])  # steps 5..8 again
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "split" not in r] == list(range(1, 9))  # not 1..12, 5..8
    assert [r["step"] for r in rows if r.get("split") == "valid"] == [6, 8]
    assert 5 in session_starts(logdir)  # the resumed writer hides the first run's scalars from step 5 on (purge_step)
    # the first run's step-10 and step-12 are gone: a later --checkpoint DIR must not resume that timeline
    assert [p.name for p in checkpoints_in(logdir)] == [f"step-{n:07d}.pt" for n in (2, 4, 6, 8)]
