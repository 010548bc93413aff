"""The CUDA paths (device placement, fp16 GradScaler, bf16 autocast, resume, the teacher cache, DDP over
NCCL): skipped where no GPU is visible, run on the lent GPU machine."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from init.config import load_config
from process.distributed import setup
from process.train_entry import train_run
from tests.helpers import tiny_config_text

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
REPO = Path(__file__).resolve().parents[1]


def train_on_gpu(tmp_path, name, text, checkpoint=None):
    path = tmp_path / f"{name}.config"
    path.write_text(text)
    info = setup(False, "0")
    assert info.device.type == "cuda"
    summary = train_run(load_config(path), info, str(tmp_path / name), checkpoint, True)
    return summary, tmp_path / name


def last_student(logdir):
    from process.checkpoint import checkpoints_in, load_checkpoint
    return load_checkpoint(checkpoints_in(logdir)[-1])["student"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_trains_and_tests_on_gpu(tmp_path, tiny_model, tiny_data, precision):
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 4, "precision": precision})
    summary, logdir = train_on_gpu(tmp_path, precision, text)
    records = [json.loads(l) for l in (logdir / "metrics.jsonl").read_text().splitlines() if "split" not in l]
    losses = [r["loss"] for r in records]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert 0.0 <= summary["test"]["metrics"]["accuracy"] <= 1.0
    assert all(t.device.type == "cpu" for t in last_student(logdir).values())  # checkpoints load anywhere


def test_gpu_resume_matches_uninterrupted(tmp_path, tiny_model, tiny_data):
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 2, "save_steps": 3})
    _, full = train_on_gpu(tmp_path, "full", text)
    _, resumed = train_on_gpu(tmp_path, "resumed", text, str(full / "checkpoints" / "step-0000006.pt"))
    a, b = last_student(full), last_student(resumed)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # cuBLAS may pick other kernels: not bitwise


def test_kd_with_teacher_cache_on_gpu(tmp_path, tiny_model, tiny_data):
    _, teacher = train_on_gpu(tmp_path, "teacher", tiny_config_text(tiny_model, tiny_data))
    text = tiny_config_text(tiny_model, tiny_data, "kd", student={"init_from": "teacher", "num_layers": 1},
                            distill={"teacher": str(teacher), "cache_teacher": "true"}, train={"epoch": 2})
    summary, logdir = train_on_gpu(tmp_path, "kd", text)
    assert summary["teacher_params"] > summary["params"]
    assert (logdir / "student").is_dir()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs two GPUs")
def test_nccl_ddp_two_gpus(tmp_path, tiny_model, tiny_data):
    config = tmp_path / "ddp.config"
    config.write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(REPO / "train.py"),
           "--config", str(config), "--gpu", "0,1", "--distributed", "--logdir", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "ddp" / "student").is_dir()
