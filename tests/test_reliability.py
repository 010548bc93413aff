"""Reliability: preemption, SIGKILL fault injection, corrupt checkpoints, non-finite losses, disk and
directory problems, bad hand-offs. Subprocess tests run the real train.py."""
import errno
import hashlib
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from init.config import load_config
from process.checkpoint import checkpoints_in, find_checkpoint, load_checkpoint, manifest_of, prune
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO, sealed_bytes, tiny_config_text
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
    with pytest.raises(CheckpointError, match=r"step-0000012.pt: truncated or unverifiable checkpoint \(size \d+ bytes, "
                                              r"no sha256 seal at its end and no step-0000012.pt.json\)"):
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
    with pytest.raises(ConfigError, match=r"--logdir .*run: 1000 bytes free, the run needs about [\d.]+ \w+ at its peak "
                                          r"\(101 checkpoints of [\d.]+ \w+ while the newest is written, best.pt"):
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
    with pytest.raises(CheckpointError, match=r"evil.pt: truncated or unverifiable checkpoint"):
        load_checkpoint(path)  # unsealed: refused before it is opened
    path.write_bytes(sealed_bytes({"student": _Boom()}))  # a seal proves the bytes are whole, not that they are safe
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


def flip_tensor_bytes(path):
    """Flip 4 bytes in the middle of the file's largest tensor: the zip and its pickle still load, only a checksum
    can tell (the reviewer's 4 bytes at offset 90,000,000 of a quickstart checkpoint)."""
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[record.header_offset + 26:record.header_offset + 30])
    at = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
    data[at:at + 4] = bytes(b ^ 0xFF for b in data[at:at + 4])
    path.write_bytes(bytes(data))


def test_a_checkpoint_copied_without_a_sidecar_still_proves_its_integrity(tmp_path, tiny_model, tiny_data):
    _, full = tiny_run(tmp_path, tiny_model, tiny_data, "full", train={"epoch": 2, "save_steps": 3})
    latest, best = checkpoints_in(full)[-1], full / "checkpoints" / "best.pt"
    for path in (latest, best):
        manifest_of(path).unlink(missing_ok=True)  # copied alone
        flip_tensor_bytes(path)
        torch.load(path, weights_only=True)  # the damage alone does not stop a load
    warnings = []
    found, _ = find_checkpoint(full, warn=warnings.append)
    assert found.name == "step-0000009.pt"
    assert warnings == [f"{latest}: corrupt checkpoint (sha256 mismatch); trying the previous checkpoint"]
    warnings.clear()
    found, _ = find_checkpoint(latest, warn=warnings.append)  # --checkpoint FILE: the same fallback
    assert found.name == "step-0000009.pt" and len(warnings) == 1
    warnings.clear()
    found, _ = find_checkpoint(full, prefer_best=True, warn=warnings.append)  # test.py: best.pt first
    assert found.name == "step-0000009.pt" and warnings[0].startswith(f"{best}: corrupt checkpoint (sha256 mismatch)")


def test_older_checkpoints_load_only_when_their_sidecar_verifies(tmp_path):
    path = tmp_path / "checkpoints" / "step-0000003.pt"
    path.parent.mkdir()
    torch.save({"student": {"w": torch.arange(4.0)}}, path)  # the older format: a plain torch.save file ...
    data = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"step-0000003.pt: truncated or unverifiable checkpoint \(size "
                                              rf"{len(data)} bytes, no sha256 seal at its end and no step-0000003.pt.json\)"):
        load_checkpoint(path)
    manifest_of(path).write_text(json.dumps({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    assert torch.equal(load_checkpoint(path)["student"]["w"], torch.arange(4.0))  # ... and its sidecar
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=rf"size {len(data) - 10} bytes, expected {len(data)}"):
        load_checkpoint(path)


def test_free_space_check_counts_the_run_directory_at_its_peak(tmp_path, tiny_model, tiny_data, monkeypatch):
    import shutil
    from process.init_process import init_all
    from process.run_dir import check_free_space
    from process.train_process import disk_needs
    train = {"epoch": 2, "save_steps": 3, "keep_last": 2}
    _, full = tiny_run(tmp_path, tiny_model, tiny_data, "full", train=train)
    checkpoint = max(p.stat().st_size for p in checkpoints_in(full))
    export = sum(p.stat().st_size for p in (full / "student").rglob("*") if p.is_file())
    peak = 3 * checkpoint + (full / "checkpoints" / "best.pt").stat().st_size + export  # keep_last + 1 while writing
    run = init_all(load_config(tmp_path / "full.config"), DistInfo(), "train")
    for free, fits in ((int(0.75 * peak), False), (int(1.25 * peak), True)):
        monkeypatch.setattr(shutil, "disk_usage", lambda p, free=free: shutil._ntuple_diskusage(10**12, 10**12 - free, free))
        if fits:
            check_free_space(tmp_path / "fresh", **disk_needs(run))
        else:
            with pytest.raises(ConfigError, match=r"fresh: [\d.]+ \w+ free, the run needs about [\d.]+ \w+ at its "
                                                  r"peak \(3 checkpoints of [\d.]+ \w+ while the newest is written"):
                check_free_space(tmp_path / "fresh", **disk_needs(run))


def fail_writes_to(monkeypatch, marker, error):
    """Make the fsync of any file whose path contains `marker` raise `error`, as a full disk does."""
    real_fsync = os.fsync

    def fsync(fd):
        if marker in os.readlink(f"/proc/self/fd/{fd}"):
            raise error
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)


def guarded_run(tmp_path, tiny_model, tiny_data, capsys, **train):
    """tiny_run under train.py's main_guard: (exit code, the stderr lines that start with 'error')."""
    from process.cli import main_guard
    with pytest.raises(SystemExit) as stop:
        main_guard(lambda: tiny_run(tmp_path, tiny_model, tiny_data, train=train))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return stop.value.code, [line for line in err.splitlines() if line.startswith("error")]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_mid_run_stops_with_one_line_and_exit_28(tmp_path, tiny_model, tiny_data, monkeypatch, capsys, code):
    fail_writes_to(monkeypatch, ".step-0000006.pt.", OSError(code, os.strerror(code)))
    status, lines = guarded_run(tmp_path, tiny_model, tiny_data, capsys, epoch=2, save_steps=3, keep_last=2)
    path = tmp_path / "run" / "checkpoints" / "step-0000006.pt"
    assert status == 28
    assert len(lines) == 1 and re.fullmatch(rf"error: {re.escape(str(path))}: {os.strerror(code)}: saving it needs "
                                            r"[\d,]+ bytes, [\d,]+ bytes are free; .*", lines[0]), lines
    assert sorted(p.name for p in path.parent.iterdir()) == ["step-0000003.pt"]  # no temp file, the older one kept
    assert load_checkpoint(path.parent / "step-0000003.pt")["state"]["global_step"] == 3


def test_a_full_disk_during_the_export_stops_with_one_line_and_exit_28(tmp_path, tiny_model, tiny_data, monkeypatch,
                                                                       capsys):
    from model.base import DistillModel

    def export(self, directory, tokenizer):
        (Path(directory) / "model.safetensors").write_bytes(b"half")
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                           '"No space left on device" })')  # what safetensors raises
    monkeypatch.setattr(DistillModel, "export", export)
    status, lines = guarded_run(tmp_path, tiny_model, tiny_data, capsys, epoch=1)
    assert status == 28 and len(lines) == 1
    assert lines[0].startswith(f"error: {tmp_path / 'run' / 'student'}: No space left on device: saving it needs")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".student")]  # no half export left


def test_temp_files_of_interrupted_saves_are_removed_by_pruning_and_resume(tmp_path, tiny_model, tiny_data):
    import tempfile
    _, full = tiny_run(tmp_path, tiny_model, tiny_data, "full", train={"epoch": 2, "save_steps": 3})
    folder = full / "checkpoints"

    def plant():
        """Temp files named as atomic_save names them (a kill mid-save leaves them), and look-alikes to keep."""
        stale = []
        for name in ("step-0000013.pt", "best.pt", "step-0000013.pt.json"):
            with tempfile.NamedTemporaryFile(prefix=f".{name}.", dir=folder, delete=False) as handle:
                handle.write(b"x" * 4096)
            stale.append(Path(handle.name))
        others = [folder / ".step-0000013.pt.mine", folder / "notes.txt", full / ".step-0000013.pt.abcd1234",
                  folder / ".other.pt.abcd1234"]
        for path in others:
            path.write_bytes(b"x" * 4096)
        return stale, others

    stale, others = plant()
    prune(full, 100)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in others)
    stale, _ = plant()
    tiny_run(tmp_path, tiny_model, tiny_data, "full", checkpoint=str(folder / "step-0000009.pt"),
             train={"epoch": 2, "save_steps": 3})
    assert not any(p.exists() for p in stale) and all(p.exists() for p in others)
