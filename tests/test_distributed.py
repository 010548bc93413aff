"""A real 2-process gloo DDP run (torchrun) matches the 1-process run at the same global batch."""
import json
import os
import subprocess
import sys

import pytest
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


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_with_different_configs_refuse_to_start(tmp_path, tiny_model_nodrop, tiny_data):
    path = tmp_path / "c.config"
    path.write_text(tiny_config_text(tiny_model_nodrop, tiny_data))
    port = free_port()
    procs = []
    for rank, epochs in ((0, 2), (1, 3)):  # as if two nodes had different copies of the config
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(REPO / "train.py"), "--config", str(path), "--distributed",
                                       "--logdir", str(tmp_path / "run"), "--set", f"train.epoch={epochs}"],
                                      stderr=subprocess.PIPE, text=True, env=env, cwd=REPO))
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [2, 2]
    assert "[train] epoch = 3 on rank 1 but 2 on rank 0; every rank must run the same config" in errors[1]
    assert "another rank resolved a different config" in errors[0]
    assert not (tmp_path / "run").exists()


def test_a_dead_rank_stops_the_others_instead_of_hanging(tmp_path, tiny_model_nodrop, tiny_data):
    import signal
    import time
    path = tmp_path / "c.config"
    path.write_text(tiny_config_text(tiny_model_nodrop, tiny_data, train={"epoch": 200, "batch_size": 4}))
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(REPO / "train.py"), "--config", str(path), "--distributed", "--logdir", str(tmp_path / "run")],
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    children = [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
    assert len(children) == 2
    killed_at = time.time()
    os.kill(children[1], signal.SIGKILL)  # rank 1 dies without a word
    proc.communicate(timeout=90)
    assert proc.returncode != 0 and time.time() - killed_at < 60


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lost_peer_trial(tmp_path, model, data, trial):
    """Two ranks started by hand, as on two nodes (no torchrun agent to end the survivor): rank 1 is killed with
    SIGKILL mid-training. Returns (rank 0's exit code, seconds it took to end after the kill, its stderr)."""
    import signal
    import time
    path = tmp_path / f"c{trial}.config"
    path.write_text(tiny_config_text(model, data, train={"epoch": 200, "batch_size": 4, "dist_timeout_s": 20}))
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    logdir = tmp_path / f"run{trial}"
    procs = [subprocess.Popen([sys.executable, str(REPO / "train.py"), "--config", str(path), "--distributed",
                               "--logdir", str(logdir)], stdout=subprocess.DEVNULL, text=True,
                              stderr=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                              env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)), cwd=REPO) for rank in (0, 1)]
    metrics, deadline = logdir / "metrics.jsonl", time.time() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3 + trial % 3):
        assert all(p.poll() is None for p in procs) and time.time() < deadline, procs[0].stderr.read()[-2000:]
        time.sleep(0.05)
    killed_at = time.time()
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    try:
        _, err = procs[0].communicate(timeout=90)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        _, err = procs[0].communicate()
        return None, time.time() - killed_at, err
    return procs[0].returncode, time.time() - killed_at, err


def check_survivor_ends(tmp_path, model, data, trials):
    for trial in range(trials):
        code, seconds, err = lost_peer_trial(tmp_path, model, data, trial)
        assert code == 1 and seconds < 20 + 10 + 15, (trial, code, seconds, err[-2000:])
        assert "error: lost contact with another rank, stopping:" in err, err[-2000:]


def test_a_rank_started_by_hand_ends_with_one_line_when_its_peer_dies(tmp_path, tiny_model_nodrop, tiny_data):
    check_survivor_ends(tmp_path, tiny_model_nodrop, tiny_data, trials=1)


@pytest.mark.slow
def test_the_survivor_ends_in_every_one_of_nine_trials(tmp_path, tiny_model_nodrop, tiny_data):
    check_survivor_ends(tmp_path, tiny_model_nodrop, tiny_data, trials=9)


def test_two_ranks_share_one_teacher_logit_file_and_the_next_run_reads_it(tmp_path, tiny_model_nodrop, tiny_data):
    cache = tmp_path / "logits"
    config = tmp_path / "kd.config"
    config.write_text(tiny_config_text(tiny_model_nodrop, tiny_data, "kd", student={"num_layers": 1},
                                       distill={"teacher": str(tiny_model_nodrop), "cache_dir": str(cache)},
                                       train={"epoch": 1, "batch_size": 4, "logging_steps": 1}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    logs = []
    for name in ("first", "second"):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               str(REPO / "train.py"), "--config", str(config), "--distributed", "--logdir",
                               str(tmp_path / name)], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs.append(proc.stdout + proc.stderr)
    assert len(list(cache.glob("*.pt"))) == 1  # the ranks' shards were exchanged and written once
    assert "read from" not in logs[0] and "teacher logits of 48 training examples read from" in logs[1]
    assert losses(tmp_path / "first")[0] == losses(tmp_path / "second")[0]  # the same soft targets, bitwise
