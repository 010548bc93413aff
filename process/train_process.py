"""The training loop: micro-batches -> accumulate -> clip -> step, with periodic logging, evaluation,
best-student export and atomic checkpoints. Resuming restores every piece of state, so a resumed
run ends with the same weights as one never stopped."""
import contextlib
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from process.checkpoint import (atomic_save, disk_full_error, is_disk_full, optimizer_state_bytes, prune,
                                remove_stale_temps, rng_state, set_rng_state, tensor_bytes)
from process.distributed import all_gather_objects, barrier, mean_across
from process.guards import NonFiniteLoss, Preempted, SignalFlag, agree
from process.progress import ProgressLine
from process.eval_process import autocast, evaluate, to_device
from process.run_dir import MetricsLog, export_student
from utils.logging import get_logger
from utils.memory import peak_rss_mb
from efficiency.perf import Throughput


def wrap_for_training(run):
    """The module the train loop calls: DDP around the method (student + heads; the frozen teacher is not
    registered, so DDP never sees it), or the method itself on one process."""
    if not run.info.enabled:
        return run.model
    device_ids = [run.info.device.index] if run.info.device.type == "cuda" else None
    return DistributedDataParallel(run.model, device_ids=device_ids,
                                   find_unused_parameters=run.model.find_unused_parameters)


def save_checkpoint(run, logdir):
    """All ranks contribute their RNG state; rank 0 writes step-N.pt atomically and prunes old ones.
    Returns the checkpoint's path."""
    rngs = all_gather_objects(run.info, rng_state())
    path = Path(logdir) / "checkpoints" / f"step-{run.state['global_step']:07d}.pt"
    if run.info.is_main:
        ckpt = {"version": 1, **run.model.trainable_state(), "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict() if run.scaler else None,
                "state": dict(run.state), "rng": rngs, "world": run.info.world}
        atomic_save(ckpt, path)
        prune(logdir, run.config.get("train", "keep_last"))
    barrier(run.info)
    return str(path)


def checkpoints_kept(run):
    """[train] keep_last, or when it keeps them all (<= 0) the most this run can write: one per save_steps (or
    eval_steps), one per epoch, one at the end."""
    keep = run.config.get("train", "keep_last")
    if keep > 0:
        return keep
    every = run.config.get("train", "save_steps") or run.config.get("train", "eval_steps")
    return (run.total_steps // every if every else 0) + math.ceil(run.total_steps / run.steps_per_epoch) + 1


def disk_needs(run):
    """Bytes of what save_checkpoint and save_best write, for run_dir.check_free_space: a checkpoint (the trainable
    state plus the optimizer's per-parameter state), best.pt (the trainable state), the export (the student)."""
    weights = tensor_bytes(run.model.trainable_state())
    export = tensor_bytes(run.model.student_model().state_dict()) if run.config.get("output", "export_student") else 0
    return {"checkpoint": weights + optimizer_state_bytes(run.optimizer), "best": weights, "export": export,
            "kept": checkpoints_kept(run)}


def restore_rng(run):
    rngs = run.state_dict["rng"]
    set_rng_state(rngs[run.info.rank] if run.info.rank < len(rngs) else rngs[0])


def evaluate_and_keep_best(run, logdir, log):
    """Evaluate on valid; when the selection metric improves, keep best.pt and export the student."""
    if "valid" not in run.loaders:
        return None
    metrics, _, _ = evaluate(run, "valid")
    name = run.config.get("train", "metric") or run.evaluator.main_metric
    if name not in metrics:
        from utils.errors import ConfigError
        raise ConfigError(f"[train] metric = {name}: the evaluator reports {', '.join(sorted(metrics))}")
    improved = run.state["best_metric"] is None or is_better(metrics[name], run.state["best_metric"],
                                                              run.config.get("train", "metric_mode"))
    if improved:
        run.state["best_metric"], run.state["best_step"] = metrics[name], run.state["global_step"]
    if run.info.is_main:
        log.write({"step": run.state["global_step"], "epoch": run.state["epoch"], "split": "valid", **metrics}, "valid")
        get_logger().info("valid step %d: %s", run.state["global_step"], metrics)
        if improved:
            save_best(run, logdir)
    barrier(run.info)
    return metrics


def is_better(value, best, mode):
    """Strictly better under [train] metric_mode, so a tie keeps the earlier checkpoint."""
    return value < best if mode == "min" else value > best


def save_best(run, logdir):
    """best.pt (student weights) and, when asked, the HF export of the current student (rank 0 only)."""
    atomic_save({"version": 1, **run.model.trainable_state(), "state": dict(run.state)},
                Path(logdir) / "checkpoints" / "best.pt")
    if run.config.get("output", "export_student"):
        target = Path(logdir) / "student"
        try:
            export_student(run.model, run.tokenizer, target)
        except Exception as err:  # safetensors reports a full disk as its own error, not an OSError
            if not is_disk_full(err):
                raise
            raise disk_full_error(target, tensor_bytes(run.model.student_model().state_dict()), err) from None


class LossMeter:
    """Sums detached loss parts on device; one host sync per logging step, none in between."""

    def __init__(self):
        self.sums, self.count, self.examples, self.start = {}, 0, 0, time.perf_counter()

    def add(self, out, examples):
        for key, value in out.items():
            if key.startswith("loss") and torch.is_tensor(value):
                self.sums[key] = self.sums.get(key, 0) + value.detach().float()
        self.count += 1
        self.examples += examples

    def flush(self, info):
        keys = sorted(self.sums)
        values = mean_across(info, torch.stack([self.sums[k] for k in keys]) / max(1, self.count)) if keys else []
        elapsed = time.perf_counter() - self.start
        record = {k: round(float(v), 6) for k, v in zip(keys, values)}
        record["examples_per_s"] = round(self.examples * info.world / max(elapsed, 1e-9), 2)
        self.__init__()
        return record


def clips_in_kernel(optimizer):
    """Fused Adam/AdamW divide every gradient by `optimizer.grad_scale` inside their one kernel (how
    GradScaler unscales them), so gradient clipping can ride along instead of a pass multiplying every
    gradient by the clip coefficient."""
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) and bool(optimizer.defaults.get("fused"))


def clip_gradients(optimizer, params, max_norm, in_kernel):
    """clip_grad_norm_'s rule (scale by max_norm / (norm + 1e-6) when that is below 1), without a host sync."""
    if not in_kernel:
        torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        return
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
    optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_norm, min=1.0).float()


def optimizer_step(run):
    max_norm = run.config.get("train", "max_grad_norm")
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if max_norm > 0:
        clip_gradients(run.optimizer, params, max_norm, run.scaler is None and clips_in_kernel(run.optimizer))
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


def maybe_compile(run):
    """[train] compile: torch.compile the student and the teacher in place (nn.Module.compile keeps
    parameter names, so checkpoints and exports are unchanged). Dynamic shapes: batches are padded per batch."""
    if not run.config.get("train", "compile") or run.compiled:
        return
    run.model.student_model().compile(dynamic=True)
    if run.model.teacher is not None:
        run.model.teacher.compile(dynamic=True)
    run.compiled = True


class TrainLoop:
    """One training run's loop state: micro-batches are accumulated into optimizer steps; after each step come
    logging, evaluation and checkpoints; after each epoch its evaluation and checkpoint. `train` drives it."""

    def __init__(self, run, logdir):
        config, info, state = run.config, run.info, run.state
        self.run, self.logdir, self.config, self.info, self.state = run, logdir, config, info, state
        self.logger = get_logger(info.rank)
        self.log = MetricsLog(logdir, config.get("output", "tensorboard"), state["global_step"]) if info.is_main else None
        self.trainer = wrap_for_training(run)
        self.loader, self.sampler = run.loaders["train"], run.loaders["train"].sampler
        self.accum = config.get("train", "gradient_accumulation_steps")
        self.batch_size = config.get("train", "batch_size")
        self.eval_steps, self.save_steps = config.get("train", "eval_steps"), config.get("train", "save_steps")
        self.logging_steps = config.get("train", "logging_steps")
        self.eval_every_epoch = config.get("train", "eval_every_epoch")
        # [train] epoch, or as many epochs as max_steps needs (it overrides epoch both ways, as HF's max_steps
        # does num_train_epochs; the LR schedule is sized for total_steps, so the run must reach it)
        self.epochs = math.ceil(run.total_steps / run.steps_per_epoch)
        self.max_bad = config.get("train", "max_nonfinite_steps")
        self.micro_per_epoch = math.ceil(self.sampler.num_samples / self.batch_size)  # batches in a full epoch
        if run.checkpoint:
            restore_rng(run)
            self.logger.info("resumed from %s at step %d (epoch %d, batch %d)", run.checkpoint, state["global_step"],
                             state["epoch"], state["batches_in_epoch"])
        maybe_compile(run)
        self.meter, self.done = LossMeter(), state["global_step"] >= run.total_steps
        self.perf = run.perf = Throughput()  # examples/s of the loop itself, for the efficiency report
        self.last_eval = self.last_save = None
        self.bad_run, self.bad_now = 0, torch.zeros((), dtype=torch.bool, device=info.device)
        run.model.train()
        self.bar = tqdm(total=run.total_steps, initial=state["global_step"],
                        disable=not info.is_main or not sys.stderr.isatty(), desc="train", dynamic_ncols=True)
        self.progress = ProgressLine(run.total_steps, state["global_step"]) if self.bar.disable and info.is_main else None

    def forward_backward(self, batch, sync):
        """One micro-batch: forward under autocast, the loss scaled for accumulation, backward (no DDP all-reduce
        until the micro-batch that completes an optimizer step). Non-finite losses are flagged, not synced."""
        run = self.run
        no_sync = self.trainer.no_sync() if self.info.enabled and not sync else contextlib.nullcontext()
        batch = to_device(batch, self.info.device)
        with no_sync:
            with autocast(run):
                out = self.trainer(batch)
            loss = out["loss"] / self.accum
            if run.scaler is None:  # fp16 overflow is the GradScaler's job
                self.bad_now |= ~torch.isfinite(loss.detach())
            (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        self.meter.add(out, batch["index"].numel())

    def step(self, stop, micro):
        """The optimizer step after a full accumulation (or its skip, when any rank saw a non-finite loss), then
        what the step calls for. Returns True when the epoch's loop should stop (the run reached total_steps)."""
        run, state = self.run, self.state
        signum, nonfinite = agree(self.info, stop.signum, self.bad_now)
        self.bad_now.zero_()
        state["batches_in_epoch"] = micro
        if nonfinite:
            self.skip_nonfinite()
        else:
            self.bad_run = 0
            optimizer_step(run)
            state["global_step"] += 1
            self.bar.update(1)
        step = state["global_step"]
        if signum:
            self.perf.stop()
            raise Preempted(signum, step, save_checkpoint(run, self.logdir))
        if nonfinite:
            return False
        self.after_step(step)
        if step >= run.total_steps:
            self.done = True
            if self.eval_every_epoch and self.last_eval != step:
                with self.perf.paused():  # max_steps ended the run mid-epoch: its last weights count too
                    self.evaluate(step)
            return True
        return False

    def skip_nonfinite(self):
        run, state = self.run, self.state
        run.optimizer.zero_grad(set_to_none=True)
        self.bad_run += 1
        state["nonfinite_skipped"] += 1
        self.logger.warning("non-finite loss before step %d: step skipped (%d in a row, %d in all)",
                            state["global_step"] + 1, self.bad_run, state["nonfinite_skipped"])
        if self.bad_run >= self.max_bad:
            path = save_checkpoint(run, self.logdir)
            raise NonFiniteLoss(f"[train] max_nonfinite_steps = {self.max_bad}: {self.bad_run} non-finite losses in a row "
                                f"before step {state['global_step'] + 1}; last good checkpoint {path}")

    def after_step(self, step):
        """Log every logging_steps, evaluate every eval_steps, checkpoint every save_steps (or with each evaluation)."""
        if self.logging_steps and step % self.logging_steps == 0:
            self.write_log(step)
        evaluated = bool(self.eval_steps) and step % self.eval_steps == 0
        if evaluated:
            with self.perf.paused():
                self.evaluate(step)
        if (self.save_steps and step % self.save_steps == 0) or (not self.save_steps and evaluated):
            with self.perf.paused():
                save_checkpoint(self.run, self.logdir)
            self.last_save = step

    def write_log(self, step):
        record = self.meter.flush(self.info)
        record.update(step=step, epoch=self.state["epoch"], lr=self.run.scheduler.get_last_lr()[0],
                      nonfinite_skipped=self.state["nonfinite_skipped"])
        if self.info.is_main:
            self.log.write(record, "train")
            self.bar.set_postfix(loss=record.get("loss"))
            if self.progress is not None:
                self.logger.info(self.progress.text(step, self.state["epoch"], record))

    def evaluate(self, step):
        evaluate_and_keep_best(self.run, self.logdir, self.log)
        self.last_eval = step

    def run_epoch(self, stop):
        """The rest of the current epoch (from the sampler position a resumed run left off at)."""
        state = self.state
        self.sampler.set_epoch(state["epoch"])
        micro = first = state["batches_in_epoch"]
        self.sampler.skip(micro * self.batch_size)
        began = time.perf_counter()
        for batch in self.loader:
            micro += 1
            self.perf.count(batch)
            sync = micro % self.accum == 0 or micro == self.micro_per_epoch
            self.forward_backward(batch, sync)
            if sync and self.step(stop, micro):
                break
        self.perf.stop()
        self.logger.info("epoch %d: %d batches in %.1f s wall, evaluations inside it included (peak RSS so far %.0f MiB)",
                         state["epoch"], micro - first, time.perf_counter() - began, peak_rss_mb())
        if not self.done or micro >= self.micro_per_epoch:
            self.end_epoch()
        self.perf.mark = time.perf_counter()

    def end_epoch(self):
        state = self.state
        state["epoch"] += 1
        state["batches_in_epoch"] = 0
        if self.eval_every_epoch and self.last_eval != state["global_step"]:
            self.evaluate(state["global_step"])
        if not self.done:
            save_checkpoint(self.run, self.logdir)
            self.last_save = state["global_step"]

    def finish(self):
        """A best student exists, the last step is checkpointed, the metrics log is closed."""
        run, state = self.run, self.state
        self.bar.close()
        if "valid" in run.loaders and state["best_metric"] is None:
            evaluate_and_keep_best(run, self.logdir, self.log)
        if "valid" not in run.loaders and self.info.is_main:
            save_best(run, self.logdir)  # without a validation split the final student is the one kept
        if self.last_save != state["global_step"]:
            save_checkpoint(run, self.logdir)
        if self.info.is_main:
            self.log.close()


def sweep_interrupted_saves(run, logdir):
    """Rank 0, before its first save: delete the temp files that saves killed mid-write left (pruning does too)."""
    if run.info.is_main:
        freed = remove_stale_temps(logdir)
        if freed:
            get_logger().warning("%s: removed %.1f MiB of temp files that interrupted saves left",
                                 Path(logdir) / "checkpoints", freed / 2**20)


def train(run, logdir):
    """Run (or continue) training; returns the final state dict of counters."""
    sweep_interrupted_saves(run, logdir)
    loop = TrainLoop(run, logdir)
    with SignalFlag() as stop:
        while not loop.done and run.state["epoch"] < loop.epochs:
            loop.run_epoch(stop)
    loop.finish()
    return run.state
