"""Fixtures over tests/helpers.py: tiny models and data built once per session.

Tests run torch on one intra-op thread: the models are tiny, and two spinning OpenMP threads per
process on a shared 2-core machine made training steps up to 30x slower."""
import os

import pytest
import torch

torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"  # what init_all and every train.py the tests start take as [train] num_threads = 0

from pretrained.offline import go_offline  # noqa: E402  (tests are an entry point: no hub here)

go_offline()

from tests.helpers import write_tiny_data, write_tiny_model  # noqa: E402
from tests.match_helpers import write_match_teacher, write_pair_data  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_model_nodrop(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model_nodrop"), dropout=0.0)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture
def write_config(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


# the text-matching tests' shared inputs (tests/match_helpers.py): one copy per test module, as before
@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return write_pair_data(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return write_match_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def teacher3(tmp_path_factory):
    return write_match_teacher(tmp_path_factory.mktemp("teacher3"), layers=3)


@pytest.fixture(scope="module")
def student_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("student"), dropout=0.0, seed=1)
