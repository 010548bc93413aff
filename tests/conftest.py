"""Fixtures over tests/helpers.py: tiny models and data built once per session."""
import pytest

from tests.helpers import write_tiny_data, write_tiny_model


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
