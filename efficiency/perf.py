"""Efficiency report of a train or test run: parameters, FLOPs per example at the measured mean length,
measured examples/s, achieved FLOP/s and its fraction of this machine's measured matmul peak.

FLOPs follow efficiency/flops.py (FlopCounterMode convention: matmuls only, multiply-add = 2). The formula: a
training example costs 3x the student's forward (forward + backward) plus one teacher forward unless the
teacher's logits come from the cache. Methods that run less than that (an MLM head on the masked rows only,
a frozen encoder without backward, Theseus' hybrid of predecessor and successor blocks) are corrected by one
measured training step (train_step_flops). The peak is a short matmul on the run's device in the run's precision,
measured once per process and cached. On CPU both sides are taken per second of this process's CPU time, so other
processes sharing the cores slow neither side of the fraction (a wall-clock peak measured in a busy moment had
made loops look as if they ran at the peak); on CUDA both are per wall second."""
import collections
import contextlib
import copy
import functools
import time

import torch

from efficiency.flops import counted_flops, dummy_tower, measured_flops


Peak = collections.namedtuple("Peak", "per_s per_cpu_s")


@functools.lru_cache(maxsize=8)
def matmul_peak(device="cpu", dtype=torch.float32, size=1024, repeats=8):
    """Best FLOP/s of a size x size matmul on `device` in `dtype` (about 0.2 s on 2 CPU cores): per wall second, and
    on CPU also per second of this process's CPU time (its threads' time summed), which stays put when other
    processes take turns on the same cores."""
    device = torch.device(device)
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        a @ b
        sync()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - cpu_start)
    flops = 2 * size ** 3
    return Peak(flops / wall, flops / cpu if device.type == "cpu" and cpu > 0 else None)


def forward_flops(model, length, cls_only=False):
    """FLOPs of one forward of an HF encoder / classifier over `length` tokens (batch 1), its last layer for
    [CLS] only when cls_only (efficiency/cls_only.py); None when the model does not take input_ids (word-level
    students, two-tower models)."""
    from efficiency.cls_only import cls_only_last_layer
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
        frozen = clone.frozen_modules()
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
        self.examples, self.tokens, self.batches, self.seconds, self.cpu_seconds = 0, 0, 0, 0.0, 0.0
        self.last = None
        self.mark, self.cpu_mark = time.perf_counter(), time.process_time()

    def count(self, batch):
        ids = batch.get("input_ids")
        self.last = batch  # the batch train_step_flops measures once the loop is over
        self.examples += batch["index"].numel()
        self.batches += 1
        if ids is not None and ids.dim() == 2:
            self.tokens += ids.numel()

    @contextlib.contextmanager
    def paused(self):
        self.stop()
        try:
            yield
        finally:
            self.mark, self.cpu_mark = time.perf_counter(), time.process_time()

    def stop(self):
        """Add the time since the last mark: wall seconds, and this process's CPU seconds (all its threads)."""
        self.seconds += time.perf_counter() - self.mark
        self.cpu_seconds += time.process_time() - self.cpu_mark
        self.mark, self.cpu_mark = time.perf_counter(), time.process_time()

    def mean_length(self):
        return self.tokens / self.examples if self.tokens and self.examples else None

    def examples_per_s(self):
        return self.examples / self.seconds if self.seconds > 0 else None

    def examples_per_cpu_s(self):
        return self.examples / self.cpu_seconds if self.cpu_seconds > 0 else None

    def cpu_share(self, threads):
        """CPU seconds over wall seconds x threads: below 1 when other processes (or waits) took the cores."""
        return self.cpu_seconds / (self.seconds * threads) if self.seconds > 0 and threads else None


def efficiency_report(student, teacher, mean_length, examples_per_s, flops_factor, teacher_in_step, world=1, cls_only=False,
                      step=None, examples_per_cpu_s=None, device="cpu", dtype=torch.float32):
    """The report dict. flops_factor: student forwards per example (3 training, 1 inference);
    teacher_in_step: whether each example also pays a teacher forward; cls_only: the loop ran the last
    layers for [CLS] only, so the FLOPs it spent (flops_per_example, achieved) count that, while the
    per-model forward FLOPs and their ratio stay those of the full models (what an exported model runs).
    step: (FLOPs, examples, padded length) of one measured training step (train_step_flops); the formula at
    the mean length is then scaled by measured / formula at that step's length (1 for a method that runs
    exactly the formula: its full student forward and backward and the teacher's forward).
    examples_per_cpu_s: one process's examples per second of its CPU time; on CPU the fraction of the peak is then
    taken per CPU second on both sides (a matmul of `dtype` on `device`), else per wall second."""
    from efficiency.counts import count_params

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
    from efficiency.cls_only import supports_cls_only
    ran = [student] + ([teacher] if teacher_in_step and teacher is not None else [])
    report["cls_only_last_layer"] = bool(cls_only) and any(supports_cls_only(m) for m in ran)  # MPNet: never
    report["flops_per_example"] = per_example
    peak = matmul_peak(str(device), dtype)
    report["peak_matmul_flops_per_s"] = round(peak.per_s)
    if per_example and examples_per_s:
        achieved = per_example * examples_per_s / max(1, world)  # per process, like the peak
        report["achieved_flops_per_s"] = round(achieved)
        report["fraction_of_peak"] = round(achieved / peak.per_s, 4)
    if per_example and examples_per_cpu_s and peak.per_cpu_s:
        report["peak_matmul_flops_per_cpu_s"] = round(peak.per_cpu_s)
        report["achieved_flops_per_cpu_s"] = round(per_example * examples_per_cpu_s)
        report["fraction_of_peak"] = round(per_example * examples_per_cpu_s / peak.per_cpu_s, 4)
    if s_flops and t_flops:
        report["flops_speedup_vs_teacher"] = round(t_flops / s_flops, 2)
    return report
