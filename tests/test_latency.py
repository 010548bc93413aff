"""Batch-1 latency timed side by side: both models run on each example in turn, medians and interquartile ranges
from torch.utils.benchmark's raw times, and a CPU-share figure that flags a loaded machine."""
import time

import torch

from efficiency.counts import paired_latency


class Sleeper(torch.nn.Module):
    """A model whose forward takes a known time, and records when it ran."""

    def __init__(self, seconds, log, name):
        super().__init__()
        self.seconds, self.log, self.name = seconds, log, name

    def forward(self, x):
        self.log.append(self.name)
        time.sleep(self.seconds)
        return x


def test_models_alternate_per_example_and_medians_follow_the_work():
    log = []
    inputs = [{"x": torch.zeros(1)} for _ in range(7)]
    report = paired_latency({"student": (Sleeper(0.002, log, "s"), inputs), "teacher": (Sleeper(0.010, log, "t"), inputs)},
                            warmup=2)
    assert log == ["s", "t"] * 7  # interleaved, one example at a time
    assert 1.9 <= report["student"]["median_ms"] < 6 and 9.9 <= report["teacher"]["median_ms"] < 20
    assert report["student"]["iqr_ms"] >= 0 and report["teacher"]["iqr_ms"] >= 0
    assert report["cpu_share"] < 0.5  # sleeping is waiting, not computing: such figures would be flagged


def test_a_busy_model_has_a_high_cpu_share_and_modes_are_restored():
    """Computing shows as CPU share, waiting does not. Other jobs on the machine lower the busy model's share (that
    is what the flag is for), so it is compared with a sleeping model's, timed in the same test, not with 0.5."""
    model = torch.nn.Linear(256, 256).train()
    inputs = [{"input": torch.randn(64, 256)} for _ in range(20)]
    report = paired_latency({"student": (model, inputs)})
    asleep = paired_latency({"student": (Sleeper(0.002, [], "s"), [{"x": torch.zeros(1)} for _ in range(20)])})
    assert model.training and report["student"]["median_ms"] > 0
    assert report["cpu_share"] > 0.2 and report["cpu_share"] > 2 * asleep["cpu_share"]
