"""One training run: prepare the run directory, build, train, optionally test the best student."""
import json
import os
from pathlib import Path

import torch

from process.checkpoint import load_checkpoint
from process.distributed import barrier, check_same_config
from process.init_process import build_dataset, build_loader, init_all
from process.run_dir import check_free_space, check_writable, prepare, write_json, write_text
from process.run_record import check_run_dir, forget_after, move_aside, write_record
from process.teacher_cache import build_teacher_cache
from efficiency.report import latency_fields, log_efficiency, train_efficiency
from process.test_process import efficiency, run_test
from process.train_process import disk_needs, train
from efficiency.counts import count_params
from utils.errors import ConfigError
from utils.logging import get_logger


def earlier_efficiency(logdir):
    """The efficiency block an earlier run wrote to this directory's train_summary.json, or None."""
    path = Path(logdir) / "train_summary.json"
    try:
        return json.loads(path.read_text()).get("efficiency")
    except (OSError, ValueError):
        return None


def open_run_dir(run, logdir, texts, overwrite):
    """Rank 0, once every check has passed: move an old run aside (--overwrite; back again when the disk check
    refuses), create the directory, drop what a resumed run replaces, record the config."""
    aside = move_aside(logdir) if overwrite else None
    try:
        check_free_space(logdir, **disk_needs(run))  # the run directory at its peak (process/train_process.py)
    except ConfigError:
        if aside is not None:
            os.rename(aside, logdir)
        raise
    prepare(logdir)
    if run.checkpoint:
        forget_after(logdir, run.state["global_step"])
    write_text(Path(logdir) / "config.ini", run.config.to_ini())
    write_record(logdir, texts)


def train_run(config, info, logdir, checkpoint=None, do_test=False, overwrite=False):
    """Train one config into `logdir`; returns a summary dict (best metric, params, test results). `overwrite`
    starts afresh in a directory that holds another run (moved aside); without it such a run is refused."""
    logger = get_logger(info.rank)
    check_same_config(info, config)
    texts = config.texts()  # the values as loaded, before init_all resolves data-dependent ones (num_labels)
    check_run_dir(config, texts, logdir, checkpoint, overwrite)
    if info.is_main:
        check_writable(logdir)
    run = init_all(config, info, "train", checkpoint)
    if do_test:
        run.datasets["test"] = build_dataset(config, "test")
        run.loaders["test"], _ = build_loader(config, "test", run.datasets["test"], info, config.get("train", "seed"),
                                              run.word_vocab)
    student_params = run.model.deployed_params()
    if info.is_main:
        open_run_dir(run, logdir, texts, overwrite)
    barrier(info)
    teacher_params = count_params(run.model.teacher) if run.model.teacher is not None else None
    logger.info("model %s: student %d parameters%s; %d training examples, %d optimizer steps of %d x %d examples; "
                "%d CPU threads per process", config.get("model", "model_name"), student_params,
                f", teacher {teacher_params}" if teacher_params else "", len(run.datasets["train"]), run.total_steps,
                config.get("train", "batch_size"), info.world, torch.get_num_threads())
    build_teacher_cache(run)
    state = train(run, logdir)
    summary = {"config": str(config.path), "best_metric": state["best_metric"], "best_step": state["best_step"],
               "steps": state["global_step"], "params": student_params, "teacher_params": teacher_params}
    if info.is_main:  # params, FLOPs/example, examples/s, fraction of the matmul peak, latency (docs/PERFORMANCE.md)
        split = "valid" if "valid" in run.loaders else None
        latency = efficiency(run, split) if split and config.get("eval", "latency_batches") else {}
        report = train_efficiency(run, latency_fields(latency))
        if report is None:  # resumed at its last step: no loop ran, so keep what the training measured
            report = earlier_efficiency(logdir)
        summary["efficiency"] = report
        log_efficiency(run, "train", report)
    if do_test:
        best = Path(logdir) / "checkpoints" / "best.pt"
        if best.is_file():
            run.model.load_trainable(load_checkpoint(best))
            run.checkpoint = str(best)
        summary["test"] = run_test(run, logdir)
    if info.is_main:
        write_json(Path(logdir) / "train_summary.json", summary)
        from deploy.model_card import write_model_card
        write_model_card(logdir)  # DIR/student/README.md: what the student is, what it kept, how to load it
    barrier(info)
    return summary
