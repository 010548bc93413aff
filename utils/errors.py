"""The project's one error family: every user-facing failure is a one-line message, exit code 2."""


class KDWorkerError(Exception):
    """Base class: entry points print str(err) on one line and exit with code 2."""

    exit_code = 2


class ConfigError(KDWorkerError):
    """A config file, a --set override or a registry name is wrong (message names file/section.key)."""


class DataError(KDWorkerError):
    """A data file is missing or malformed (message names file:line)."""


class CheckpointError(KDWorkerError):
    """A checkpoint is missing, truncated or incompatible with the model."""


def one_line(text):
    """Collapse a message onto one line so logs and terminals show it whole."""
    return " ".join(str(text).split())
