"""The run: everything init_all builds and the loop, evaluation, testing and the efficiency report read. Declared
here once, so no module adds attributes of its own."""
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Run:
    config: Any  # init/config.Config: the resolved config
    info: Any  # process/distributed.DistInfo: rank, world size, device
    mode: str  # "train" (train + valid splits) or "test"
    datasets: dict = field(default_factory=dict)  # split -> dataset
    loaders: dict = field(default_factory=dict)  # split -> DataLoader (collate_fn = the formatter)
    formatter: Any = None  # the formatter of the last split built (its tokenizer is the student's)
    tokenizer: Any = None  # what the student reads and the export saves (an HF tokenizer or a word vocabulary)
    word_vocab: Any = None  # formatter/word_vocab.WordVocab, built once for word-level students, else None
    model: Any = None  # the method (model/base.DistillModel)
    evaluator: Any = None
    checkpoint: Optional[str] = None  # the checkpoint file restored, if any
    state_dict: Optional[dict] = None  # its contents
    # training only (init_optimization)
    optimizer: Any = None
    scheduler: Any = None
    scaler: Any = None  # fp16 GradScaler, else None
    steps_per_epoch: int = 0
    total_steps: int = 0
    state: dict = field(default_factory=dict)  # global_step, epoch, batches_in_epoch, best_metric, best_step, ...
    compiled: bool = False  # [train] compile already applied
    # throughput of the last training loop and the last evaluation pass (efficiency/perf.Throughput)
    perf: Any = None
    eval_perf: Any = None
