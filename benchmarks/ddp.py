"""A 2-process gloo DDP run of train.py (torch.distributed.run, one thread per process) against the same
job on one process with one thread: scaling efficiency = examples/s(2 procs) / (2 x examples/s(1 proc)).
examples/s is the train loop's own figure from train_summary.json (efficiency/perf.py)."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.framework import config_text

REPO = Path(__file__).resolve().parents[1]


def launch(job, procs, work):
    logdir = work / f"run{procs}"
    config = work / f"ddp{procs}.config"
    examples = job["steps"] * job["batch_size"] * procs  # one epoch of `steps` batches per rank
    config.write_text(config_text(dict(job, examples=examples, loss="kd_hidden", mode="as_shipped"), work / "data", logdir))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = ["train.py", "--config", str(config), "--logdir", str(logdir)]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] + args
           + ["--distributed"]) if procs > 1 else [sys.executable] + args
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    summary = json.loads((logdir / "train_summary.json").read_text())
    return {"examples_per_s": summary["efficiency"]["examples_per_s"], "wall_s": round(time.perf_counter() - start, 1)}


def run(job):
    work = Path(tempfile.mkdtemp(prefix="ddp_"))
    (work / "data").mkdir()
    (work / "data" / "train.tsv").write_text(Path(job["train"]).read_text(encoding="utf-8"), encoding="utf-8")
    one, two = launch(job, 1, work), launch(job, 2, work)
    return {"one_process": one, "two_processes": two,
            "scaling_efficiency": round(two["examples_per_s"] / (2 * one["examples_per_s"]), 3)}
