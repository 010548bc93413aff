"""Efficiency report of a train or test run: parameters, FLOPs per example at the measured mean length,
measured examples/s, achieved FLOP/s and its fraction of this machine's measured matmul peak.

FLOPs follow utils/flops.py (FlopCounterMode convention: matmuls only, multiply-add = 2). The formula: a
training example costs 3x the student's forward (forward + backward) plus one teacher forward unless the
teacher's logits come from the cache. Methods that run less than that (an MLM head on the masked rows only,
a frozen encoder without backward, Theseus' hybrid of predecessor and successor blocks) are corrected by one
measured training step (train_step_flops). The peak is a short fp32 matmul, measured once per process and cached."""
import contextlib
import copy
import functools
import time

import torch

from utils.flops import counted_flops, dummy_tower, measured_flops


@functools.lru_cache(maxsize=4)
def matmul_peak_flops(size=1024, repeats=8, dtype=torch.float32):
    """Best FLOP/s of a size x size matmul on this process's threads (about 0.2 s on 2 CPU cores)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def forward_flops(model, length, cls_only=False):
    """FLOPs of one forward of an HF encoder / classifier over `length` tokens (batch 1), its last layer for
    [CLS] only when cls_only (model/cls_only.py); None when the model does not take input_ids (word-level
    students, two-tower models)."""
    from model.cls_only import cls_only_last_layer
    if model is None or length is None:
        return None
    try:
        was = model.training
        model.eval()
        try:
            with cls_only_last_layer(model, cls_only):
                return int(measured_flops(lambda: model(**dummy_tower(max(2, int(round(length))))), model))
        finally:
            model.train(was)
    except Exception:  # noqa: BLE001 - a model with other inputs simply has no FLOPs figure
        return None


def train_step_flops(model, batch):
    """FLOPs FlopCounterMode records over one forward + backward of a DistillModel on a training batch: what the
    loop really runs, row selections, frozen parts and cached teacher logits included. It runs on a deep copy in
    train mode under a forked RNG, so the trained model, its gradients, counters and the random streams stay as
    they were. None when the step cannot run outside the loop."""
    try:
        clone = copy.deepcopy(model)
        clone.train()
        frozen = [m for m in getattr(clone, "_frozen", {}).values() if isinstance(m, torch.nn.Module)]
        device = next(clone.parameters()).device
        devices = [device] if device.type == "cuda" else []
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.random.fork_rng(devices=devices):
            return counted_flops(lambda: clone(batch)["loss"].backward(), clone, *frozen)
    except Exception:  # noqa: BLE001 - the report then keeps the formula
        return None


class Throughput:
    """Examples, padded tokens and compute seconds of the train loop (evaluation and checkpoints paused).
    Reads tensor shapes only: no host sync."""

    def __init__(self):
        self.examples, self.tokens, self.batches, self.seconds = 0, 0, 0, 0.0
        self.last = None
        self.mark = time.perf_counter()

    def count(self, batch):
        ids = batch.get("input_ids")
        self.last = batch  # the batch train_step_flops measures once the loop is over
        self.examples += batch["index"].numel()
        self.batches += 1
        if ids is not None and ids.dim() == 2:
            self.tokens += ids.numel()

    @contextlib.contextmanager
    def paused(self):
        self.seconds += time.perf_counter() - self.mark
        try:
            yield
        finally:
            self.mark = time.perf_counter()

    def stop(self):
        self.seconds += time.perf_counter() - self.mark
        self.mark = time.perf_counter()

    def mean_length(self):
        return self.tokens / self.examples if self.tokens and self.examples else None

    def examples_per_s(self):
        return self.examples / self.seconds if self.seconds > 0 else None


def efficiency_report(student, teacher, mean_length, examples_per_s, flops_factor, teacher_in_step, world=1, cls_only=False,
                      step=None):
    """The report dict. flops_factor: student forwards per example (3 training, 1 inference);
    teacher_in_step: whether each example also pays a teacher forward; cls_only: the loop ran the last
    layers for [CLS] only, so the FLOPs it spent (flops_per_example, achieved) count that, while the
    per-model forward FLOPs and their ratio stay those of the full models (what an exported model runs).
    step: (FLOPs, examples, padded length) of one measured training step (train_step_flops); the formula at
    the mean length is then scaled by measured / formula at that step's length (1 for a method that runs
    exactly the formula: its full student forward and backward and the teacher's forward)."""
    from utils.efficiency import count_params

    @functools.cache
    def flops(model, length, last_cls):  # each forward counted once per report
        return forward_flops(model, length, last_cls)

    def formula(length):
        """flops_factor student forwards plus a teacher forward when it runs in the step."""
        s_spent = flops(student, length, cls_only)
        t_spent = flops(teacher, length, cls_only) if teacher_in_step else None
        return None if s_spent is None else flops_factor * s_spent + (t_spent or 0)

    s_flops, t_flops = flops(student, mean_length, False), flops(teacher, mean_length, False)
    report = {"student_params": count_params(student), "teacher_params": count_params(teacher) if teacher is not None else None,
              "mean_padded_length": round(mean_length, 2) if mean_length else None,
              "student_forward_flops_per_example": s_flops, "teacher_forward_flops_per_example": t_flops,
              "examples_per_s": round(examples_per_s, 2) if examples_per_s else None}
    per_example = formula(mean_length)
    if per_example is not None and step is not None and step[0] is not None:
        at_step = formula(step[2])
        measured = step[0] / step[1]
        per_example = round(per_example * measured / at_step) if at_step else round(measured)
        report["flops_measured_vs_formula"] = round(measured / at_step, 4) if at_step else None
    report["cls_only_last_layer"] = bool(cls_only)
    report["flops_per_example"] = per_example
    peak = matmul_peak_flops()
    report["peak_matmul_flops_per_s"] = round(peak)
    if per_example and examples_per_s:
        achieved = per_example * examples_per_s / max(1, world)  # per process, like the peak
        report["achieved_flops_per_s"] = round(achieved)
        report["fraction_of_peak"] = round(achieved / peak, 4)
    if s_flops and t_flops:
        report["flops_speedup_vs_teacher"] = round(t_flops / s_flops, 2)
    return report
