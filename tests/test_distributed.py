"""A real 2-process gloo DDP run (torchrun) matches the 1-process run at the same global batch."""
import json
import os
import subprocess
import sys

import torch

from init.config import load_config
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO, tiny_config_text


def losses(logdir):
    rows = [json.loads(l) for l in (logdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "split" not in r], [r for r in rows if r.get("split") == "valid"]


def test_two_process_gloo_matches_single_process(tmp_path, tiny_model_nodrop, tiny_data):
    # dropout off so both runs compute the same function; 48 examples = 6 global batches of 8 per epoch
    common = {"epoch": 2, "logging_steps": 1, "eval_steps": 3}
    one = tmp_path / "one.config"
    one.write_text(tiny_config_text(tiny_model_nodrop, tiny_data, train=dict(common, batch_size=8)))
    two = tmp_path / "two.config"
    two.write_text(tiny_config_text(tiny_model_nodrop, tiny_data, train=dict(common, batch_size=4)))
    train_run(load_config(one), DistInfo(), str(tmp_path / "one"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "train.py"), "--config", str(two), "--distributed", "--logdir", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loss_one, valid_one = losses(tmp_path / "one")
    loss_two, valid_two = losses(tmp_path / "two")
    assert len(loss_one) == len(loss_two) == 12
    assert max(abs(a - b) for a, b in zip(loss_one, loss_two)) < 1e-5
    assert [v["examples"] for v in valid_two] == [16] * len(valid_one)  # de-duplicated across ranks
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(valid_one, valid_two)) < 1e-5
    w1 = load_checkpoint(checkpoints_in(tmp_path / "one")[-1])["student"]
    w2 = load_checkpoint(checkpoints_in(tmp_path / "two")[-1])["student"]
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
    assert (tmp_path / "two" / "student" / "config.json").is_file()
