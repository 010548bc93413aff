"""LR schedules: transformers' own (get_scheduler), sized by the run's total optimizer steps and its warm-up.

linear: warm-up then linear decay to 0 at total_steps; cosine: warm-up then half a cosine to 0; constant: warm-up then
the base rate (transformers' constant_with_warmup). Within a run's steps these are exactly the multipliers the
project's own LambdaLR copies computed (same float expressions), so checkpoints of either resume alike."""
from transformers import get_scheduler


def warmup_steps(config, total_steps):
    """Warmup length: warmup_steps if set, else warmup_ratio of the total."""
    steps = config.get("train", "warmup_steps")
    return steps if steps > 0 else int(config.get("train", "warmup_ratio") * total_steps)


def _build(name, optimizer, config, total_steps):
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps(config, total_steps), num_training_steps=total_steps)


def build_linear(optimizer, config, total_steps):
    return _build("linear", optimizer, config, total_steps)


def build_cosine(optimizer, config, total_steps):
    return _build("cosine", optimizer, config, total_steps)


def build_constant(optimizer, config, total_steps):
    return _build("constant_with_warmup", optimizer, config, total_steps)
