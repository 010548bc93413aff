"""The log's progress line, written when no terminal shows tqdm's bar (nohup, CI, batch jobs)."""
import pytest

from init.config import load_config
from process.distributed import DistInfo
from process.progress import ProgressLine, format_duration
from process.train_entry import train_run
from tests.helpers import tiny_config_text


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("seconds,text", [(0, "0m00s"), (59.6, "1m00s"), (61, "1m01s"), (3600, "1h00m"), (7322, "2h02m")])
def test_durations(seconds, text):
    assert format_duration(seconds) == text


def test_rate_counts_only_this_process_steps():
    """Resumed at step 200 of 1000, 100 steps in 50 s: 700 steps left at 0.5 s each."""
    clock = FakeClock()
    line = ProgressLine(1000, 200, clock=clock)
    assert line.text(200, 0, {}) == "step 200/1000 (epoch 0), 0m00s elapsed"
    clock.now += 50
    assert line.text(300, 1, {"loss": 0.0123456, "examples_per_s": 36.04}) == \
        "step 300/1000 (epoch 1), loss 0.01235, 36.0 examples/s, 0m50s elapsed, about 5m50s left"


def test_training_without_a_terminal_logs_progress(tmp_path, tiny_model, tiny_data, monkeypatch, caplog):
    from utils.logging import get_logger
    monkeypatch.setattr(get_logger(), "propagate", True)
    path = tmp_path / "p.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1, "logging_steps": 2}))
    train_run(load_config(path), DistInfo(), str(tmp_path / "p"), None, False)
    # ordered and unique: after another test's train_run pytest can hold the same record twice
    lines = list(dict.fromkeys(r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")))
    assert [l.split(" (")[0] for l in lines] == ["step 2/6", "step 4/6", "step 6/6"]
    assert all(", loss " in l and " examples/s, " in l for l in lines) and lines[-1].endswith("about 0m00s left")
