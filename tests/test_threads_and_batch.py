"""[train] num_threads / --threads and [train] global_batch_size: what a run uses per process, decided before any work."""
import argparse
import os

import pytest

from init.config import load_config_text
from process.cli import overrides
from process.distributed import DistInfo
from process.init_process import apply_global_batch, cpu_threads
from utils.errors import ConfigError

BASE = "[model]\nmodel_name = bert_cls\n"


def test_threads_come_from_the_config_then_the_environment_then_the_cores(monkeypatch):
    assert cpu_threads(load_config_text(BASE + "[train]\nnum_threads = 3\n")) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(load_config_text(BASE)) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads(load_config_text(BASE)) == len(os.sched_getaffinity(0))


def test_threads_flag_overrides_the_config():
    args = argparse.Namespace(set=["train.epoch=1"], seed=None, threads=4)
    config = load_config_text(BASE + "[train]\nnum_threads = 1\n", overrides(args))
    assert config.get("train", "num_threads") == 4


def test_global_batch_is_split_over_processes():
    config = load_config_text(BASE + "[train]\nglobal_batch_size = 32\nbatch_size = 7\n")
    apply_global_batch(config, DistInfo(rank=0, world=2))
    assert config.get("train", "batch_size") == 16
    plain = load_config_text(BASE + "[train]\nbatch_size = 7\n")
    apply_global_batch(plain, DistInfo(rank=0, world=2))
    assert plain.get("train", "batch_size") == 7  # off: batch_size stays per process


def test_global_batch_that_does_not_divide_is_one_line():
    config = load_config_text(BASE + "[train]\nglobal_batch_size = 32\n")
    with pytest.raises(ConfigError, match=r"^<text>:\d+: \[train\] global_batch_size = 32: does not divide over 3 processes$"):
        apply_global_batch(config, DistInfo(rank=0, world=3))
