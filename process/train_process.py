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

from process.checkpoint import atomic_save, prune, rng_state, set_rng_state
from process.distributed import all_gather_objects, barrier, mean_across
from process.guards import NonFiniteLoss, Preempted, SignalFlag, agree
from process.progress import ProgressLine
from process.eval_process import autocast, evaluate, to_device
from process.run_dir import MetricsLog, export_student
from utils.logging import get_logger
from utils.perf import Throughput


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


def restore_rng(run):
    rngs = run.state_dict["rng"]
    set_rng_state(rngs[run.info.rank] if run.info.rank < len(rngs) else rngs[0])


def evaluate_and_keep_best(run, logdir, log):
    """Evaluate on valid; when the selection metric improves, keep best.pt and export the student."""
    if "valid" not in run.loaders:
        return None
    metrics, _ = evaluate(run, "valid")
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
        export_student(run.model, run.tokenizer, Path(logdir) / "student")


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
    if not run.config.get("train", "compile") or getattr(run, "compiled", False):
        return
    run.model.student_model().compile(dynamic=True)
    if run.model.teacher is not None:
        run.model.teacher.compile(dynamic=True)
    run.compiled = True


def train(run, logdir):
    """Run (or continue) training; returns the final state dict of counters."""
    config, info, state = run.config, run.info, run.state
    logger = get_logger(info.rank)
    log = MetricsLog(logdir, config.get("output", "tensorboard")) if info.is_main else None
    trainer = wrap_for_training(run)
    loader, sampler = run.loaders["train"], run.loaders["train"].sampler
    accum = config.get("train", "gradient_accumulation_steps")
    eval_steps, save_steps = config.get("train", "eval_steps"), config.get("train", "save_steps")
    logging_steps = config.get("train", "logging_steps")
    # [train] epoch, or as many epochs as max_steps needs (it overrides epoch both ways, as HF's max_steps
    # does num_train_epochs; the LR schedule is sized for total_steps, so the run must reach it)
    epochs = math.ceil(run.total_steps / run.steps_per_epoch)
    max_bad = config.get("train", "max_nonfinite_steps")
    micro_per_epoch = math.ceil(sampler.num_samples / config.get("train", "batch_size"))  # batches in a full epoch
    if run.checkpoint:
        restore_rng(run)
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", run.checkpoint, state["global_step"],
                    state["epoch"], state["batches_in_epoch"])
    maybe_compile(run)
    meter, done = LossMeter(), state["global_step"] >= run.total_steps
    perf = run.perf = Throughput()  # examples/s of the loop itself, for the efficiency report
    last_eval = last_save = None
    bad_run, bad_now = 0, torch.zeros((), dtype=torch.bool, device=info.device)
    run.model.train()
    bar = tqdm(total=run.total_steps, initial=state["global_step"], disable=not info.is_main or not sys.stderr.isatty(),
               desc="train", dynamic_ncols=True)
    progress = ProgressLine(run.total_steps, state["global_step"]) if bar.disable and info.is_main else None
    with SignalFlag() as stop:
        while not done and state["epoch"] < epochs:
            sampler.set_epoch(state["epoch"])
            micro = state["batches_in_epoch"]
            sampler.skip(micro * config.get("train", "batch_size"))
            for batch in loader:
                micro += 1
                perf.count(batch)
                sync = micro % accum == 0 or micro == micro_per_epoch
                no_sync = trainer.no_sync() if info.enabled and not sync else contextlib.nullcontext()
                batch = to_device(batch, info.device)
                with no_sync:
                    with autocast(run):
                        out = trainer(batch)
                    loss = out["loss"] / accum
                    if run.scaler is None:  # fp16 overflow is the GradScaler's job
                        bad_now |= ~torch.isfinite(loss.detach())
                    (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
                meter.add(out, batch["index"].numel())
                if not sync:
                    continue
                signum, nonfinite = agree(info, stop.signum, bad_now)
                bad_now.zero_()
                state["batches_in_epoch"] = micro
                if nonfinite:
                    run.optimizer.zero_grad(set_to_none=True)
                    bad_run += 1
                    state["nonfinite_skipped"] += 1
                    logger.warning("non-finite loss before step %d: step skipped (%d in a row, %d in all)",
                                   state["global_step"] + 1, bad_run, state["nonfinite_skipped"])
                    if bad_run >= max_bad:
                        path = save_checkpoint(run, logdir)
                        raise NonFiniteLoss(f"[train] max_nonfinite_steps = {max_bad}: {bad_run} non-finite losses in a row "
                                            f"before step {state['global_step'] + 1}; last good checkpoint {path}")
                else:
                    bad_run = 0
                    optimizer_step(run)
                    state["global_step"] += 1
                    bar.update(1)
                step = state["global_step"]
                if signum:
                    perf.stop()
                    raise Preempted(signum, step, save_checkpoint(run, logdir))
                if nonfinite:
                    continue
                if logging_steps and step % logging_steps == 0:
                    record = meter.flush(info)
                    record.update(step=step, epoch=state["epoch"], lr=run.scheduler.get_last_lr()[0],
                                  nonfinite_skipped=state["nonfinite_skipped"])
                    if info.is_main:
                        log.write(record, "train")
                        bar.set_postfix(loss=record.get("loss"))
                        if progress is not None:
                            logger.info(progress.text(step, state["epoch"], record))
                evaluated = bool(eval_steps) and step % eval_steps == 0
                if evaluated:
                    with perf.paused():
                        evaluate_and_keep_best(run, logdir, log)
                    last_eval = step
                if (save_steps and step % save_steps == 0) or (not save_steps and evaluated):
                    with perf.paused():
                        save_checkpoint(run, logdir)
                    last_save = step
                if step >= run.total_steps:
                    done = True
                    if config.get("train", "eval_every_epoch") and last_eval != step:
                        with perf.paused():  # max_steps ended the run mid-epoch: its last weights count too
                            evaluate_and_keep_best(run, logdir, log)
                        last_eval = step
                    break
            perf.stop()
            if not done or micro >= micro_per_epoch:
                state["epoch"] += 1
                state["batches_in_epoch"] = 0
                if config.get("train", "eval_every_epoch") and last_eval != state["global_step"]:
                    evaluate_and_keep_best(run, logdir, log)
                    last_eval = state["global_step"]
                if not done:
                    save_checkpoint(run, logdir)
                    last_save = state["global_step"]
            perf.mark = time.perf_counter()
    bar.close()
    if "valid" in run.loaders and state["best_metric"] is None:
        evaluate_and_keep_best(run, logdir, log)
    if "valid" not in run.loaders and info.is_main:
        save_best(run, logdir)  # without a validation split the final student is the one kept
    if last_save != state["global_step"]:
        save_checkpoint(run, logdir)
    if info.is_main:
        log.close()
    return state
