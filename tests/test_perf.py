"""efficiency/perf.py: the efficiency report's clock. On CPU the loop and the matmul peak are both timed per second of
this process's CPU time, so other processes sharing the cores do not make a loop look as if it ran at the peak."""
import time

import pytest
import torch

import efficiency.perf
from tests.test_cls_only import L, tiny_bert
from efficiency.perf import Peak, Throughput, efficiency_report, matmul_peak


def test_throughput_keeps_cpu_seconds_apart_from_wall_seconds():
    perf = Throughput()
    time.sleep(0.3)  # counted wall time in which the process holds no core, as when another job has it
    perf.stop()
    assert perf.seconds >= 0.3 and perf.cpu_seconds < 0.1
    assert perf.cpu_share(1) == pytest.approx(perf.cpu_seconds / perf.seconds)
    before = perf.seconds, perf.cpu_seconds
    with perf.paused():  # evaluation and checkpoints are not counted on either clock
        time.sleep(0.2)
        sum(i * i for i in range(200_000))
    perf.stop()
    assert perf.seconds - before[0] < 0.1 and perf.cpu_seconds - before[1] < 0.1
    perf.examples = 10
    assert perf.examples_per_cpu_s() == pytest.approx(10 / perf.cpu_seconds)


def test_the_fraction_of_the_peak_is_per_cpu_second_when_the_cpu_rate_is_given(monkeypatch):
    monkeypatch.setattr(efficiency.perf, "matmul_peak", lambda device, dtype: Peak(per_s=4e9, per_cpu_s=2e9))
    model = tiny_bert()
    wall = efficiency_report(model, None, L, 100.0, 3, False)
    cpu = efficiency_report(model, None, L, 100.0, 3, False, examples_per_cpu_s=40.0)
    per_example = wall["flops_per_example"]
    assert wall["fraction_of_peak"] == round(100 * per_example / 4e9, 4) and "achieved_flops_per_cpu_s" not in wall
    assert cpu["achieved_flops_per_s"] == 100 * per_example and cpu["achieved_flops_per_cpu_s"] == 40 * per_example
    assert cpu["fraction_of_peak"] == round(40 * per_example / 2e9, 4)
    assert (cpu["peak_matmul_flops_per_s"], cpu["peak_matmul_flops_per_cpu_s"]) == (4e9, 2e9)


def test_one_thread_cannot_spend_more_cpu_than_wall_time_on_the_peak_matmul():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        matmul_peak.cache_clear()
        peak = matmul_peak("cpu", torch.float32, 256, 4)
    finally:
        torch.set_num_threads(threads)
    # per repeat CPU time <= wall time on one thread, so the best CPU rate is at least the best wall rate
    assert peak.per_s > 1e8 and peak.per_cpu_s >= 0.99 * peak.per_s
