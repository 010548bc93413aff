"""Testing: metrics on the test split, parameter counts and CPU latency, written to results.json."""
import json
from pathlib import Path

import torch

from model.base import student_inputs, teacher_inputs
from process.distributed import barrier
from process.eval_process import evaluate, to_device
from process.run_dir import write_json
from efficiency.counts import count_params, latency_ms
from utils.logging import get_logger


def single_example_batches(run, split, n):
    """Batch-size-1 batches for the latency measurement (the first n examples of the split)."""
    data, formatter = run.loaders[split].dataset, run.loaders[split].collate_fn
    return [to_device(formatter([data[i]]), run.info.device) for i in range(min(n, len(data)))]


def efficiency(run, split):
    """Parameters and batch-1 latency of the student, and of the teacher when there is one."""
    model = run.model
    report = {"params": count_params(model.student_model())}
    n = run.config.get("eval", "latency_batches")
    batches = single_example_batches(run, split, n) if n else []
    if batches and not model.two_tower:  # two-tower models: online latency via process/doc_cache.py
        with torch.inference_mode():
            report["latency_ms"] = latency_ms(model.student_model(), [student_inputs(b) for b in batches])
    if model.teacher is not None:
        report["teacher_params"] = count_params(model.teacher)
        if batches:
            report["teacher_latency_ms"] = latency_ms(model.teacher, [teacher_inputs(b) for b in batches])  # its own inputs
            if report.get("latency_ms"):
                report["speedup_vs_teacher"] = round(report["teacher_latency_ms"] / report["latency_ms"], 2)
    return report


def run_test(run, logdir, split="test"):
    """Evaluate `split`, write <logdir>/results.json on rank 0 and print the metrics; returns the results."""
    metrics, _ = evaluate(run, split)
    results = {"config": str(run.config.path), "checkpoint": run.checkpoint, "metrics": metrics}
    results.update(efficiency(run, split) if run.info.is_main else {})
    if run.info.is_main:  # FLOPs, examples/s, fraction of the matmul peak (efficiency/report.py)
        from efficiency.report import latency_fields, log_efficiency, test_efficiency
        results["efficiency"] = test_efficiency(run, latency_fields(results))
        log_efficiency(run, "test", results["efficiency"])
    flops = run.model.analytic_flops()  # text-matching models: FLOPs split offline / online (efficiency/flops.py)
    if flops is not None:
        results["flops"], results["params_with_heads"] = flops, count_params(run.model)
    if run.model.two_tower and run.config.get("match", "eval_through_cache") and run.info.world == 1:
        from process.doc_cache import evaluate_through_cache
        metrics, results["two_tower"] = evaluate_through_cache(run, split)  # what a deployment measures
        results["direct_metrics"], results["metrics"] = results["metrics"], metrics
        results["latency_ms"] = results["two_tower"].get("online_latency_ms")
        if results.get("teacher_latency_ms") and results["latency_ms"]:
            results["speedup_vs_teacher"] = round(results["teacher_latency_ms"] / results["latency_ms"], 2)
    if run.info.is_main:
        write_json(Path(logdir) / "results.json", results)
        get_logger().info("test results written to %s", Path(logdir) / "results.json")
        print(json.dumps({"metrics": metrics, "params": results["params"], "latency_ms": results.get("latency_ms")}))
    barrier(run.info)
    return results
