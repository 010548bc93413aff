"""Inference of the teacher and the student: median latency at batch 1 and throughput at batch 32
(dev sentences, dynamic padding, eval mode, inference_mode)."""
import statistics
import time

import torch

from benchmarks.common import encode, load_models, peak_rss_mb, read_tsv


@torch.inference_mode()
def measure(model, tokenizer, rows, batch_size, repeats):
    model.eval()
    batches = [encode(tokenizer, rows[i:i + batch_size], "longest", 128) for i in range(0, len(rows), batch_size)]
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in batches][:repeats]
    model(**batches[0])
    times = []
    for b in batches:
        start = time.perf_counter()
        model(**b)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(batches[0]["input_ids"])


def run(job):
    teacher, student, tokenizer = load_models(job)
    rows = read_tsv(job["dev"] or job["train"], 32 * job["inference_batches"] + job["inference_batches"])
    out = {}
    for name, model in (("teacher", teacher), ("student", student)):
        one, _ = measure(model, tokenizer, rows, 1, job["inference_batches"] * 2)
        many, n = measure(model, tokenizer, rows, 32, job["inference_batches"])
        out[name] = {"latency_ms_b1": round(one * 1000, 2), "examples_per_s_b32": round(n / many, 1),
                     "params": sum(p.numel() for p in model.parameters())}
    out["speedup_b1"] = round(out["teacher"]["latency_ms_b1"] / out["student"]["latency_ms_b1"], 2)
    out["speedup_b32"] = round(out["student"]["examples_per_s_b32"] / out["teacher"]["examples_per_s_b32"], 2)
    out["peak_rss_mb"] = peak_rss_mb()
    return out
