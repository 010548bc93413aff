"""Slow smoke runs of the shipped GLUE configs on the real data in ../shared/data with the real
all-MiniLM-L6-v2 weights: a few steps each, so every layout, pair encoding and metric is exercised."""
import json
import os
from pathlib import Path

import pytest

from init.config import load_config
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO

GLUE = Path(os.environ.get("KDW_SHARED_DATA", REPO.parent / "shared" / "data")) / "glue"
pytestmark = pytest.mark.slow


@pytest.mark.skipif(not GLUE.is_dir(), reason=f"real GLUE data not found at {GLUE}")
@pytest.mark.parametrize("task,metric", [("SST-2", "accuracy"), ("MRPC", "acc_and_f1"), ("RTE", "accuracy"), ("STS-B", "corr"),
                                         ("CoLA", "mcc")])
def test_teacher_config_runs_on_real_data(tmp_path, task, metric):
    config = load_config(REPO / "config" / "glue" / task / "teacher.config",
                         [f"data.root={GLUE}", "train.max_steps=2", "data.max_examples=64", "eval.latency_batches=2",
                          "train.eval_steps=0", "output.tensorboard=false"])
    summary = train_run(config, DistInfo(), str(tmp_path / "run"), do_test=True)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert metric in results["metrics"] and 22_700_000 < results["params"] < 22_720_000  # 6-layer MiniLM + head
    assert summary["steps"] == 2
