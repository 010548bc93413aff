"""BERT-of-Theseus replacement schedules: the probability p that a successor module replaces its
predecessor block, as a function of the optimizer steps already taken.

Mirrors the paper's code (JetRunner/BERT-of-Theseus, replacement_scheduler.py), whose scheduler is
stepped after every optimizer step, so the forward passes of step s (0-based, = steps completed) use:
  constant: p = replacing_rate, and 1.0 once s >= steps_for_replacing (0 = never switch; the paper's
            code has None for that, and its 0 would switch after the first step)
  linear:   p = min(1, scheduler_linear_k * s + replacing_rate)   (the paper: k = 0.0006, b = 0.3)
"""
from utils.errors import ConfigError

KINDS = ("constant", "linear", "none")  # none: the paper's code's name for constant


def replacing_rate(kind, step, rate, linear_k=0.0, steps_for_replacing=0):
    """p for the forward passes of optimizer step `step` (0-based)."""
    if kind in ("constant", "none"):
        return 1.0 if steps_for_replacing > 0 and step >= steps_for_replacing else rate
    if kind == "linear":
        return min(1.0, linear_k * step + rate)
    raise ConfigError(f"[theseus] scheduler_type = {kind!r}: expected constant or linear")


def key_where(config, section, key):
    """'file:line: [section] key' (just '[section] key' for a default value), the head of a config error."""
    source = config.source(section, key)
    return ("" if source == "default" else f"{source}: ") + f"[{section}] {key}"
