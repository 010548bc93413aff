"""Reliability: preemption, SIGKILL fault injection, corrupt checkpoints, non-finite losses, disk and
directory problems, bad hand-offs. Subprocess tests run the real train.py."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from init.config import load_config
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO, tiny_config_text
from utils.errors import CheckpointError, ConfigError

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def start(config, logdir, *extra):
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), "--config", str(config), "--logdir", str(logdir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)


def logged_step(logdir):
    path = logdir / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [json.loads(l)["step"] for l in path.read_text().splitlines() if l.strip().endswith("}")]
    return max(steps, default=0)


def wait_for_step(proc, logdir, step, timeout=120):
    deadline = time.time() + timeout
    while logged_step(logdir) < step:
        assert proc.poll() is None, f"run ended before step {step}: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "timed out waiting for training progress"
        time.sleep(0.05)


def final_weights(logdir):
    return load_checkpoint(checkpoints_in(logdir)[-1])["student"]


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory, tiny_model, tiny_data):
    """A 120-step tiny run (dropout on), run once uninterrupted as the reference."""
    root = tmp_path_factory.mktemp("long")
    config = root / "long.config"
    config.write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 20, "save_steps": 4, "keep_last": 3},
                                       eval={"latency_batches": 0}))
    proc = start(config, root / "reference")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return config, final_weights(root / "reference")


def test_sigterm_writes_checkpoint_exits_cleanly_and_resumes_exactly(tmp_path, long_run):
    config, reference = long_run
    logdir = tmp_path / "run"
    proc = start(config, logdir)
    wait_for_step(proc, logdir, 10)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("stopped: stopped by SIGTERM at step ") and f"--checkpoint {logdir}" in line
    step = int(line.split("at step ")[1].split(";")[0])
    assert checkpoints_in(logdir)[-1].name == f"step-{step:07d}.pt"  # checkpoint at the current step
    proc = start(config, logdir, "--checkpoint", str(logdir))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert same(final_weights(logdir), reference)


def test_sigkill_at_random_steps_then_resume_matches_uninterrupted(tmp_path, long_run):
    config, reference = long_run
    logdir = tmp_path / "run"
    rng = random.Random(1234)
    targets = sorted(rng.sample(range(5, 110), 3))
    proc = start(config, logdir)
    for target in targets:
        wait_for_step(proc, logdir, target)
        proc.kill()  # SIGKILL: no handler runs
        proc.communicate(timeout=60)
        for ckpt in checkpoints_in(logdir):  # every checkpoint on disk is whole
            load_checkpoint(ckpt)
        lost = logged_step(logdir) - int(checkpoints_in(logdir)[-1].name[5:12])
        assert 0 <= lost < 4 + 2  # at most the steps since the last checkpoint (save_steps = 4), plus in-flight
        proc = start(config, logdir, "--checkpoint", str(logdir))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert same(final_weights(logdir), reference)


def tiny_run(tmp_path, tiny_model, tiny_data, name="run", checkpoint=None, **sections):
    path = tmp_path / f"{name}.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data, **sections))
    logdir = tmp_path / name
    return train_run(load_config(path), DistInfo(), str(logdir), checkpoint), logdir


def test_truncated_checkpoint_is_reported_and_previous_one_used(tmp_path, tiny_model, tiny_data, caplog):
    _, full = tiny_run(tmp_path, tiny_model, tiny_data, "full", train={"epoch": 2, "save_steps": 3})
    latest = checkpoints_in(full)[-1]
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk or a copy cut short
    from process.checkpoint import find_checkpoint
    found, _ = find_checkpoint(full, warn=lambda m: caplog.records.append(m))
    assert found.name == "step-0000009.pt"
    with pytest.raises(CheckpointError, match=r"step-0000012.pt: truncated or corrupt checkpoint \(size \d+ bytes, expected \d+\)"):
        from process.checkpoint import verify
        verify(latest)
    flipped = bytearray(checkpoints_in(full)[-2].read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    checkpoints_in(full)[-2].write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        verify(checkpoints_in(full)[-2])
    summary, resumed = tiny_run(tmp_path, tiny_model, tiny_data, "resumed", checkpoint=str(full),
                                train={"epoch": 2, "save_steps": 3})
    assert summary["steps"] == 12  # resumed from step 6, the newest intact one, and finished


def test_nonfinite_losses_skip_steps_then_stop_with_a_good_checkpoint(tmp_path, tiny_model, tiny_data, monkeypatch):
    from model.bert_cls import BertCls
    original, calls = BertCls.forward, {"n": 0}

    def flaky(self, batch):
        out = original(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 3 or calls["n"] >= 8:  # one stray NaN, later a run of them
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(BertCls, "forward", flaky)
    from process.guards import NonFiniteLoss
    with pytest.raises(NonFiniteLoss) as err:
        tiny_run(tmp_path, tiny_model, tiny_data, train={"epoch": 3, "max_nonfinite_steps": 3})
    assert "[train] max_nonfinite_steps = 3: 3 non-finite losses in a row before step 7" in str(err.value)
    last = checkpoints_in(tmp_path / "run")[-1]
    ckpt = load_checkpoint(last)
    assert ckpt["state"]["global_step"] == 6 and ckpt["state"]["nonfinite_skipped"] == 4
    assert all(torch.isfinite(t).all() for t in ckpt["student"].values() if t.is_floating_point())


def test_unwritable_or_full_logdir_is_reported_before_training(tmp_path, tiny_model, tiny_data, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    path = tmp_path / "c.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data))
    with pytest.raises(ConfigError, match=r"afile is a file, not a directory"):
        train_run(load_config(path), DistInfo(), str(blocker / "run"))
    import shutil
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ConfigError, match=r"--logdir .*run: 0 MiB free, a checkpoint and an export need about"):
        train_run(load_config(path), DistInfo(), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_stage_names_cannot_escape_the_run_directory(tmp_path):
    from process.pipeline import parse_pipeline
    path = tmp_path / "p.config"
    path.write_text("[pipeline]\nstages = ../../etc\n[stage.../../etc]\nconfig = x.config\n")
    with pytest.raises(ConfigError, match=r"'../../etc' is not a plain name"):
        parse_pipeline(path)


def test_pipeline_validates_every_stage_before_the_first_trains(tmp_path, tiny_model, tiny_data):
    from process.pipeline import run_pipeline
    (tmp_path / "a.config").write_text(tiny_config_text(tiny_model, tiny_data))
    (tmp_path / "b.config").write_text(tiny_config_text(tiny_model, tiny_data).replace("[train]", "[train]\nepochs = 2"))
    (tmp_path / "p.config").write_text("[pipeline]\nstages = a, b\n[stage.a]\nconfig = a.config\n[stage.b]\nconfig = b.config\n")
    with pytest.raises(ConfigError, match=r"b.config:\d+: \[train\] epochs: unknown key; did you mean 'epoch'\?"):
        run_pipeline(tmp_path / "p.config", DistInfo(), str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_tokenizer_that_does_not_fit_the_student_is_rejected(tmp_path, tiny_model, tiny_data):
    from tests.helpers import make_tokenizer
    big = tmp_path / "bigtok"
    make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)]).save_pretrained(big)
    path = tmp_path / "c.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data, model={"tokenizer": str(big)}))
    with pytest.raises(ConfigError, match=r"\[model\] tokenizer: 205 tokens but the student's embedding has 29 rows"):
        train_run(load_config(path), DistInfo(), str(tmp_path / "run"))


def test_malformed_data_exits_2_with_file_line_and_no_output(tmp_path, tiny_model, tiny_data):
    data = tmp_path / "data"
    data.mkdir()
    lines = (tiny_data / "train.tsv").read_text().splitlines()
    lines[4] = lines[4] + "\textra column"
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    (data / "dev.tsv").write_bytes((tiny_data / "dev.tsv").read_bytes())
    (data / "test.tsv").write_bytes((tiny_data / "test.tsv").read_bytes())
    path = tmp_path / "c.config"
    path.write_text(tiny_config_text(tiny_model, data))
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(path), "--logdir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {data / 'train.tsv'}:5: expected 2 columns, got 3"]
    assert not (tmp_path / "run").exists()


class _Boom:
    """Unpickling this would run code: a weights_only load must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_checkpoints_never_unpickle_arbitrary_objects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"student": _Boom()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: cannot read checkpoint \(UnpicklingError"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_config_text_is_never_evaluated(tmp_path, monkeypatch):
    from init.config import load_config_text
    monkeypatch.chdir(tmp_path)
    config = load_config_text("[model]\nmodel_name = __import__('os').system('touch pwned-by-config')\n")
    assert config.get("model", "model_name").startswith("__import__")
    with pytest.raises(ConfigError):
        load_config_text("[model]\nmodel_name = kd\n[train]\nepoch = __import__('os').system('touch pwned-by-config')\n")
    assert not (tmp_path / "pwned-by-config").exists()


def test_a_run_writes_only_under_its_run_directory(tmp_path, tiny_model, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def snapshot(*roots):
        return {p: p.stat().st_mtime_ns for root in roots for p in root.rglob("*")}

    before = snapshot(tmp_path, tiny_model, tiny_data)
    _, logdir = tiny_run(tmp_path, tiny_model, tiny_data, train={"epoch": 1})
    after = snapshot(tmp_path, tiny_model, tiny_data)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed and all(p == logdir or logdir in p.parents or p == tmp_path / "run.config" for p in changed)
