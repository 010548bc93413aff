"""The efficiency block of train_summary.json and results.json (docs/PERFORMANCE.md): what the run cost and how
close it came to the machine's matmul peak. Rank 0 prints it as one log line. Reads the run (process/run.py) and
the method's declared members (model/base.py), imports neither."""
import json

import torch

from efficiency.perf import efficiency_report, train_step_flops
from utils.logging import get_logger
from utils.precision import precision_dtype


def teacher_in_train_step(run):
    """Whether each training example paid a teacher forward (no logit cache, or hidden states needed)."""
    model = run.model
    if model.teacher is None or not model.teacher_runs_in_train_step:
        return False
    return not model.teacher_logits_cached or model.uses_hidden


def measured_step(run, perf):
    """(FLOPs, examples, padded length) of one forward + backward on the loop's last batch, or None (no loop, no
    batch, or a batch without input_ids)."""
    batch = perf.last if perf is not None else None
    ids = batch.get("input_ids") if batch is not None else None
    if ids is None or ids.dim() != 2:
        return None
    return train_step_flops(run.model, batch), batch["index"].numel(), ids.shape[1]


def loop_report(run, perf, flops_factor, teacher_in_step, latency, cls_only=False, step=None):
    """The report of one measured loop (None when it counted nothing). On CPU it adds cpu_share, the share of its
    threads' wall time the loop got the cores for, and takes the fraction of the peak per CPU second."""
    if perf is None or not perf.examples:
        return None
    eps, on_cpu = perf.examples_per_s(), run.info.device.type == "cpu"
    report = efficiency_report(run.model.student_model(), run.model.teacher, perf.mean_length(),
                               eps * run.info.world if eps else None, flops_factor, teacher_in_step, run.info.world, cls_only,
                               step, perf.examples_per_cpu_s() if on_cpu else None, run.info.device,
                               precision_dtype(run.config))
    share = perf.cpu_share(torch.get_num_threads()) if on_cpu else None
    if share is not None:
        report["cpu_share"] = round(share, 4)
    report.update(latency or {})
    return report


def train_efficiency(run, latency=None):
    """Report for the train loop just run (run.perf from process/train_process.py): the method's student
    forwards per example (3: forward + backward) plus the teacher's unless its logits came from the cache,
    scaled by one measured training step where the method runs less or more than that."""
    cls_only = run.model.last_layer_cls_only(run.model.uses_hidden)
    perf = run.perf
    return loop_report(run, perf, run.model.student_forwards_per_train_example, teacher_in_train_step(run), latency,
                       cls_only, measured_step(run, perf))


def test_efficiency(run, latency=None):
    """Report for the last evaluation pass (student inference at [eval] batch_size)."""
    return loop_report(run, run.eval_perf, 1, False, latency, run.model.last_layer_cls_only(False))


def latency_fields(results):
    """The latency entries of a results dict (process/test_process.py efficiency) the report carries."""
    timed = [f"{who}{kind}{what}" for kind in ("", "batch32_") for who in ("", "teacher_")
             for what in ("latency_ms", "latency_iqr_ms")]
    keys = timed + ["speedup_vs_teacher", "latency_cpu_share", "batch32_latency_cpu_share", "latency_reliable"]
    return {k: results[k] for k in keys if k in results}


def log_efficiency(run, what, report):
    if report and run.info.is_main:
        get_logger().info("efficiency (%s): %s", what, json.dumps(report))
