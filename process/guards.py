"""Run guards: SIGTERM/SIGINT become "checkpoint now and exit", non-finite losses skip the step, and
every rank agrees on both with one small all-reduce per optimizer step."""
import signal
import threading

import torch
import torch.distributed as dist

from utils.errors import KDWorkerError, Preempted  # noqa: F401  (Preempted: raised by the loop, defined with the errors)


class NonFiniteLoss(KDWorkerError):
    """Too many consecutive non-finite losses: the run stops, its last good checkpoint kept."""


class SignalFlag:
    """Records SIGTERM/SIGINT instead of dying mid-step; a second SIGINT interrupts at once."""

    def __init__(self):
        self.signum, self._previous = 0, {}

    def _handle(self, signum, frame):
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def agree(info, signum, nonfinite):
    """(signal number, non-finite?) as the maximum over ranks: all ranks act on the same step."""
    flags = torch.tensor([float(signum), 1.0 if nonfinite else 0.0])
    if info.enabled:
        if info.device.type == "cuda":
            flags = flags.to(info.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    signum, bad = flags.tolist()
    return int(signum), bad > 0
