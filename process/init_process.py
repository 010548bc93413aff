"""init_all: config -> datasets, loaders, model, optimizer, scheduler, restored state. Everything that can
fail on bad input fails here, before the first step."""
import math
import os

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from init.registry import dataset_list, evaluator_list, formatter_list, lookup, model_list, optimizer_list, scheduler_list
from init.word_vocab import build_word_vocab
from process.checkpoint import find_checkpoint
from process.run import Run
from process.sampler import ResumableSampler
from utils.allocator import keep_freed_memory
from utils.errors import CheckpointError, ConfigError
from utils.logging import get_logger
from utils.seed import set_seed


class IndexedDataset(Dataset):
    """Adds each example's position, so evaluation can de-duplicate what DistributedSampler pads."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return dict(self.inner[i], index=i)


def build_dataset(config, mode):
    return lookup(dataset_list, config, "data", f"{mode}_dataset_type")(config, mode)


def text_length(example):
    """Characters of the example's texts: a cheap proxy for tokens, so batches of similar length pad little."""
    return len(example.get("text_a") or "") + len(example.get("text_b") or "")


def example_lengths(dataset):
    """text_length of each example, to group batches by length; None for datasets whose examples carry
    no text_a (word-level or pre-tokenised inputs)."""
    lengths = []
    for i in range(len(dataset)):
        example = dataset[i]
        if not isinstance(example, dict) or "text_a" not in example:
            return None
        lengths.append(text_length(example))
    return lengths


def formatter_class(config):
    return lookup(formatter_list, config, "data", "formatter_type")


def build_loader(config, mode, dataset, info, seed, word_vocab=None):
    """A DataLoader with its own generator (the global RNG is left to dropout, for exact resume). Word-level
    formatters get the run's word vocabulary (built once by init_all)."""
    cls = formatter_class(config)
    formatter = cls(config, mode, word_vocab) if cls.reads_word_vocab else cls(config, mode)
    data = IndexedDataset(dataset)
    if mode == "train":
        batch_size = config.get("train", "batch_size")
        lengths = example_lengths(dataset) if config.get("data", "group_by_length") else None
        sampler = ResumableSampler(data, info.world, info.rank, config.get("train", "shuffle"), seed, lengths, batch_size)
    else:
        sampler = DistributedSampler(data, info.world, info.rank, shuffle=False) if info.world > 1 else None
        batch_size = config.get("eval", "batch_size")
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler, collate_fn=formatter,
                        num_workers=config.get("data", "num_workers"), generator=torch.Generator().manual_seed(seed))
    return loader, formatter


def names_of(dataset):
    """The dataset's label names in id order (GLUE's for its numeric labels), else its label list."""
    return getattr(dataset, "label_names", None) or dataset.label_list


def label_count(dataset):
    """Output size the data implies: 1 for regression, 0 for unlabeled text (general distillation)."""
    if dataset.label_list is None and not dataset.is_regression:
        return 0
    return 1 if dataset.is_regression else len(dataset.label_list)


def check_unlabeled_rows(run):
    """Transfer-set rows carry no label: a model that trains on gold labels alone would learn nothing from them,
    so only models with a teacher's soft target for every row may read them."""
    config = run.config
    if "train" not in run.datasets or not config.get("data", "transfer_file"):
        return
    if not run.model.learns_without_labels:
        name = config.get("model", "model_name")
        raise ConfigError(f"{config.source('data', 'transfer_file')}: [data] transfer_file rows have no labels, but "
                          f"model '{name}' learns from gold labels only (kd-family methods and TinyBERT read them: the "
                          "teacher labels them)")


def check_vocabulary(run):
    """Token ids must fit the embedding tables they index: a mismatched tokenizer fails here, by name."""
    size = len(run.tokenizer)
    rows = run.model.student_model().get_input_embeddings().num_embeddings
    if size > rows:
        raise ConfigError(f"[model] tokenizer: {size} tokens but the student's embedding has {rows} rows "
                          "(tokenizer and student weights come from different vocabularies)")
    teacher = run.model.teacher
    if teacher is not None and "train" in run.loaders:
        separate = run.loaders["train"].collate_fn.teacher_tokenizer
        teacher_size = len(separate) if separate is not None else size
        teacher_rows = teacher.get_input_embeddings().num_embeddings
        if teacher_size > teacher_rows:
            raise ConfigError(f"[distill] teacher: its embedding has {teacher_rows} rows but the inputs it gets use "
                              f"{teacher_size} token ids (teacher and its tokenizer differ)")


def cpu_threads(config):
    """[train] num_threads, or what this process is offered: $OMP_NUM_THREADS, else the cores it may run on (not the
    machine's count: beside other jobs, or under a CPU quota, more threads than cores slow every step)."""
    threads = config.get("train", "num_threads")
    if threads:
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def apply_global_batch(config, info):
    """[train] global_batch_size split over the processes into [train] batch_size, or one line when it does not divide."""
    total = config.get("train", "global_batch_size")
    if not total:
        return
    if total % info.world:
        raise ConfigError(f"{config.source('train', 'global_batch_size')}: [train] global_batch_size = {total}: does not "
                          f"divide over {info.world} processes")
    config.set("train", "batch_size", total // info.world)


def init_all(config, info, mode="train", checkpoint=None):
    """Build everything for `mode` ("train" also builds valid; "test" only test)."""
    torch.set_num_threads(cpu_threads(config))
    apply_global_batch(config, info)
    seed = config.get("train", "seed")
    set_seed(seed)
    keep_freed_memory(config.get("train", "keep_freed_memory"))
    run = Run(config=config, info=info, mode=mode)
    splits = ["train"] + (["valid"] if config.get("data", "valid_file") else []) if mode == "train" else ["test"]
    for split in splits:
        run.datasets[split] = build_dataset(config, split)
    if config.get("model", "num_labels") == 0:
        config.set("model", "num_labels", label_count(run.datasets[splits[0]]))
    if formatter_class(config).reads_word_vocab:
        run.word_vocab = build_word_vocab(config)
    for split in splits:
        run.loaders[split], run.formatter = build_loader(config, split, run.datasets[split], info, seed, run.word_vocab)
    run.tokenizer = run.formatter.tokenizer
    method = lookup(model_list, config, "model", "model_name")
    run.model = (method(config, word_vocab=run.word_vocab) if method.reads_word_ids else method(config)).to(info.device)
    check_vocabulary(run)
    check_unlabeled_rows(run)
    run.model.set_label_names(names_of(run.datasets[splits[0]]))
    run.evaluator = lookup(evaluator_list, config, "eval", "evaluator")(config)
    if checkpoint:
        path, run.state_dict = find_checkpoint(checkpoint, prefer_best=(mode != "train"), warn=get_logger(info.rank).warning)
        run.checkpoint = str(path)
        try:
            run.model.load_trainable(run.state_dict)
        except (RuntimeError, KeyError) as err:
            raise CheckpointError(f"{path}: does not fit model '{config.get('model', 'model_name')}' ({str(err).splitlines()[0][:200]})") from None
    if mode == "train":
        init_optimization(run)
    return run


def cpu_has_native_bf16():
    """Whether oneDNN runs bf16 matmuls natively on this CPU (avx512_bf16 or AMX). Without it bf16 autocast is
    emulated: on an AVX2-only EPYC one MiniLM step took 11x as long as in fp32 (docs/PERFORMANCE.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private op gone in some build: assume native, stay silent
        return True


def init_optimization(run):
    """Optimizer, scheduler, AMP scaler and the step counters, restored from the checkpoint if any."""
    config = run.config
    accum = config.get("train", "gradient_accumulation_steps")
    run.steps_per_epoch = max(1, math.ceil(len(run.loaders["train"]) / accum))
    run.total_steps = config.get("train", "max_steps") or run.steps_per_epoch * config.get("train", "epoch")
    params = [(n, p) for n, p in run.model.named_parameters() if p.requires_grad]
    run.optimizer = lookup(optimizer_list, config, "train", "optimizer")(params, config)
    run.scheduler = lookup(scheduler_list, config, "train", "lr_scheduler")(run.optimizer, config, run.total_steps)
    precision = config.get("train", "precision")
    if precision == "fp16" and run.info.device.type != "cuda":
        raise ConfigError(f"{config.source('train', 'precision')}: [train] precision = fp16 needs CUDA; use bf16 on CPU")
    if precision == "bf16" and run.info.device.type == "cpu" and not cpu_has_native_bf16():
        get_logger(run.info.rank).warning(
            "%s: [train] precision = bf16 on a CPU without native bf16 (no avx512_bf16/AMX): autocast emulates it, "
            "about 10x slower than fp32 (docs/PERFORMANCE.md); use fp32 here", config.source("train", "precision"))
    run.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    run.state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "best_metric": None, "best_step": None,
                 "nonfinite_skipped": 0}
    if run.checkpoint:
        ckpt = run.state_dict
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{run.checkpoint}: holds weights only (best.pt); resume from a step-*.pt checkpoint")
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        if run.scaler is not None and ckpt.get("scaler"):
            run.scaler.load_state_dict(ckpt["scaler"])
        run.state.update(ckpt["state"])
