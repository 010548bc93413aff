"""Parameter counts and measured CPU latency, reported for every trained and tested model."""
import statistics
import time

import torch


def count_params(module):
    return sum(p.numel() for p in module.parameters())


# the modules that carry a factorised word table (vocab x e) up to the hidden width: the bottleneck student's
# (model/parts/recurrent_encoder.py) and ALBERT's; only the word table feeds them, so they count as part of it
WORD_PROJECTIONS = ("word_projection", "embedding_hidden_mapping_in")


def embedding_params(module):
    """Parameters of the word-embedding table (get_input_embeddings()), plus its e -> hidden projection when the
    table is factorised; position and token-type tables and the embedding LayerNorm are not counted. What a
    vocabulary costs: the part of a model that a bottleneck or a smaller vocabulary cuts. None without a table."""
    try:
        table = module.get_input_embeddings()
    except (AttributeError, NotImplementedError):  # not a token model (e.g. a callable), or no table declared
        return None
    if not isinstance(table, torch.nn.Module):
        return None
    projections = (m for name, m in module.named_modules() if name.rsplit(".", 1)[-1] in WORD_PROJECTIONS)
    return count_params(table) + sum(count_params(m) for m in projections)


def latency_ms(module, batches, warmup=3):
    """Median wall time (ms) of module(**batch) over the given batch-size-1 inputs, in eval mode (one model's
    paired_latency)."""
    return paired_latency({"model": (module, batches)}, warmup).get("model", {}).get("median_ms")


BATCH = 32  # the second latency batch size (results.json, tools/export.py): an online service batching requests
MIN_CPU_SHARE = 0.5  # below this the process waited for cores more than it ran: a latency figure then says little


@torch.inference_mode()
def paired_latency(models, warmup=3):
    """Batch-1 latency of several models measured side by side: {name: {"median_ms", "iqr_ms"}}, plus "cpu_share".

    models: {name: (module or any callable, [inputs per example])}, every list as long. Each example runs every model in turn, so a
    load that comes and goes slows all of them alike and their ratio stays honest (timed one after the other, a
    teacher measured under load once came out slower than its student by 0.4x and faster by 7.8x in two reports).
    One perf_counter reading per call, after `warmup` untimed examples: torch.utils.benchmark's Timer runs warm-up
    calls of its own before every measurement, which would triple the runs of an interleaved loop. cpu_share is the
    process's CPU time over its threads' wall time while timing: under MIN_CPU_SHARE the figures are not reliable."""
    modules = {name: module for name, (module, _) in models.items() if isinstance(module, torch.nn.Module)}
    modes = {name: module.training for name, module in modules.items()}
    for module in modules.values():
        module.eval()
    count = min(len(inputs) for _, inputs in models.values())
    times = {name: [] for name in models}
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        for name, (module, inputs) in models.items():
            start = time.perf_counter()
            module(**inputs[i])
            if i >= warmup or count <= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for name, module in modules.items():
        module.train(modes[name])
    report = {}
    for name, values in times.items():
        if values:
            q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
            report[name] = {"median_ms": round(statistics.median(values), 3), "iqr_ms": round(q3 - q1, 3)}
    report["cpu_share"] = round(cpu / max(wall * torch.get_num_threads(), 1e-9), 3)
    return report
