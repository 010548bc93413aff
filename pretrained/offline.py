"""The offline switch. Entry points (train.py, test.py, tools, benchmarks) call `go_offline()` before anything loads
a model: this project's machines reach package registries only, so a hub lookup would hang or fail late. Importing a
module never flips it; a library user who wants the hub simply does not call this."""
import os


def go_offline():
    """HF_HUB_OFFLINE=1 and no advisory warnings, unless the caller's environment already says otherwise."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
