"""The project's one error family: every user-facing failure is a one-line message, exit code 2 (28: disk full)."""


class KDWorkerError(Exception):
    """Base class: entry points print str(err) on one line and exit with its exit_code (2 unless a subclass says)."""

    exit_code = 2


class ConfigError(KDWorkerError):
    """A config file, a --set override or a registry name is wrong (message names file/section.key)."""


class DataError(KDWorkerError):
    """A data file is missing or malformed (message names file:line)."""


class CheckpointError(KDWorkerError):
    """A checkpoint is missing, truncated or incompatible with the model."""


class DiskFullError(KDWorkerError):
    """A save ran out of disk space or quota (ENOSPC / EDQUOT) mid-run: not the input's fault, so not code 2;
    28 is ENOSPC's errno. The message names the file and the bytes it needed."""

    exit_code = 28


class Preempted(Exception):
    """Raised after the checkpoint of a signalled run is written; the entry point exits 128+signal. Not a
    KDWorkerError: nothing was wrong with the input. Defined here, beside the errors, so the entry point catches it
    without importing torch."""

    def __init__(self, signum, step, checkpoint):
        import signal
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}; "
                         f"continue with --checkpoint {checkpoint.rsplit('/checkpoints/', 1)[0]}")


def one_line(text):
    """Collapse a message onto one line so logs and terminals show it whole."""
    return " ".join(str(text).split())
