"""Parameter counts and measured CPU latency, reported for every trained and tested model."""
import statistics
import time

import torch


def count_params(module):
    return sum(p.numel() for p in module.parameters())


@torch.inference_mode()
def latency_ms(module, batches, warmup=3):
    """Median wall time (ms) of module(**batch) over the given batch-size-1 inputs, in eval mode."""
    was_training = module.training
    module.eval()
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        module(**batch)
        if i >= warmup or len(batches) <= warmup:
            times.append((time.perf_counter() - start) * 1000)
    module.train(was_training)
    return round(statistics.median(times), 3) if times else None
