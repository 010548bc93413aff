"""LR schedules as LambdaLR multipliers: linear warmup then linear decay, cosine, or constant."""
import math

from torch.optim.lr_scheduler import LambdaLR


def warmup_steps(config, total_steps):
    """Warmup length: warmup_steps if set, else warmup_ratio of the total."""
    steps = config.get("train", "warmup_steps")
    return steps if steps > 0 else int(config.get("train", "warmup_ratio") * total_steps)


def _warm(step, warm):
    return step / max(1, warm)


def build_linear(optimizer, config, total_steps):
    warm = warmup_steps(config, total_steps)
    return LambdaLR(optimizer, lambda s: _warm(s, warm) if s < warm else max(0.0, (total_steps - s) / max(1, total_steps - warm)))


def build_cosine(optimizer, config, total_steps):
    warm = warmup_steps(config, total_steps)

    def factor(s):
        if s < warm:
            return _warm(s, warm)
        progress = (s - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return LambdaLR(optimizer, factor)


def build_constant(optimizer, config, total_steps):
    warm = warmup_steps(config, total_steps)
    return LambdaLR(optimizer, lambda s: _warm(s, warm) if s < warm else 1.0)
