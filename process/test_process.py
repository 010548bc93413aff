"""Testing: metrics on the test split, parameter counts and CPU latency, written to results.json."""
import json
from pathlib import Path

import torch

from model.base import student_inputs, teacher_inputs
from process.distributed import barrier
from process.eval_process import evaluate, to_device
from process.init_process import names_of
from process.run_dir import write_json
from efficiency.counts import BATCH, MIN_CPU_SHARE, count_params, embedding_params, paired_latency
from utils.logging import get_logger


def single_example_batches(run, split, n):
    """Batch-size-1 batches for the latency measurement (the first n examples of the split)."""
    data, formatter = run.loaders[split].dataset, run.loaders[split].collate_fn
    return [to_device(formatter([data[i]]), run.info.device) for i in range(min(n, len(data)))]


def full_batch(run, split):
    """One batch of the split's first BATCH examples, for the batch-32 latency."""
    data, formatter = run.loaders[split].dataset, run.loaders[split].collate_fn
    return to_device(formatter([data[i] for i in range(min(BATCH, len(data)))]), run.info.device)


def timed_models(run, batches):
    """{name: (module, inputs)} for paired_latency: the student (two-tower models: online latency via
    process/doc_cache.py instead) and the teacher on its own inputs, when there is one."""
    model, timed = run.model, {}
    if batches and not model.two_tower:
        timed["student"] = (model.student_model(), [student_inputs(b) for b in batches])
    if batches and model.teacher is not None:
        timed["teacher"] = (model.teacher, [teacher_inputs(b) for b in batches])
    return timed


def record_latency(report, measured, kind):
    """Copy one paired_latency measurement into the report: `<kind>latency_ms`, `teacher_<kind>latency_ms`, their
    IQRs and `<kind>latency_cpu_share` (kind: "" for batch 1, "batch32_")."""
    for name, prefix in (("student", ""), ("teacher", "teacher_")):
        if name in measured:
            report[f"{prefix}{kind}latency_ms"] = measured[name]["median_ms"]
            report[f"{prefix}{kind}latency_iqr_ms"] = measured[name]["iqr_ms"]
    report[f"{kind}latency_cpu_share"] = measured["cpu_share"]


def efficiency(run, split):
    """Parameters (all, and the word table's: efficiency/counts.py embedding_params) and CPU latency (median and
    interquartile range) at batch size 1 and, with [eval] latency_batch32_runs, 32, of the student and of the teacher
    when there is one, timed side by side on the same examples (efficiency/counts.py paired_latency); flagged
    unreliable when the process got too little of its cores while timing."""
    model = run.model
    report = {"params": model.deployed_params(), "embedding_params": embedding_params(model.student_model())}
    if model.teacher is not None:
        report["teacher_params"] = count_params(model.teacher)
        report["teacher_embedding_params"] = embedding_params(model.teacher)
    report = {k: v for k, v in report.items() if v is not None}
    n, runs = run.config.get("eval", "latency_batches"), run.config.get("eval", "latency_batch32_runs")
    single = timed_models(run, single_example_batches(run, split, n) if n else [])
    if single:
        record_latency(report, paired_latency(single), "")
    batched = timed_models(run, [full_batch(run, split)] * (3 + runs) if runs else [])  # one batch: spread is noise
    if batched:
        record_latency(report, paired_latency(batched), "batch32_")
    shares = [report[k] for k in ("latency_cpu_share", "batch32_latency_cpu_share") if k in report]
    if not shares:
        return report
    if report.get("latency_ms") and report.get("teacher_latency_ms"):
        report["speedup_vs_teacher"] = round(report["teacher_latency_ms"] / report["latency_ms"], 2)
    report["latency_reliable"] = min(shares) >= MIN_CPU_SHARE
    if not report["latency_reliable"]:
        get_logger().warning("latency measured with %.0f%% of the process's cores (other jobs running?): the figures "
                             "are not reliable; measure again on an idle machine", 100 * min(shares))
    return report


def run_test(run, logdir, split="test"):
    """Evaluate `split`, write <logdir>/results.json on rank 0 and print the metrics; returns the results."""
    metrics, logits, labels = evaluate(run, split)
    results = {"config": str(run.config.path), "checkpoint": run.checkpoint, "metrics": metrics}
    details = run.evaluator.details(logits, labels, names_of(run.datasets[split])) if labels is not None else None
    if details:  # classification: per-class precision / recall / F1 and the confusion matrix
        results.update(details)
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
