"""This framework on the benchmark job, through its real code path: load_config -> init_all ->
build_teacher_cache -> process.train_process.train, with its defaults ("as shipped": dynamic padding,
length-grouped batches, teacher-logit cache, fused AdamW) or fed the identical pre-padded batches."""
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import MAX_LEN, StepClock, dev_probe, finish, fixed_batches, read_tsv


def config_text(job, data_root, logdir):
    """The run config of the job (model kd or kd_hidden; no validation during training, no tensorboard)."""
    model = "kd_hidden" if job["loss"] == "kd_hidden" else "kd"
    lines = ["[data]", f"root = {data_root}", "train_file = train.tsv", f"max_examples = {job['examples']}",
             f"max_seq_length = {MAX_LEN}",
             "[model]", f"model_name = {model}", f"pretrained = {job['student']}",
             "[distill]", f"teacher = {job['teacher']}", f"cache_teacher = {str(job.get('cache', True)).lower()}",
             "cache_dir = ",  # every job pays its own teacher pass: a table read from disk would skew the timings
             "[train]", "epoch = 1000", f"max_steps = {job['steps']}", f"batch_size = {job['batch_size']}",
             f"learning_rate = {job['lr']}", "warmup_ratio = 0", f"logging_steps = {job['steps']}",
             f"seed = {job['seed']}", f"precision = {job.get('precision', 'fp32')}",
             f"compile = {str(job.get('compile', False)).lower()}",
             "[eval]", "latency_batches = 0", "[output]", f"logdir = {logdir}", "tensorboard = false",
             "export_student = false"]
    return "\n".join(lines) + "\n"


class FixedBatches(Dataset):
    """Examples of the pre-padded batches, one tensor row each, so the loader rebuilds the same batches."""

    def __init__(self, batches):
        self.rows = [{k: v[i] for k, v in b.items()} for b in batches for i in range(len(b["input_ids"]))]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return dict(self.rows[i], index=i)


def stack(examples):
    return {k: torch.stack([torch.as_tensor(e[k]) for e in examples]) for k in examples[0]}


def run(job):
    from init.config import load_config
    from process.distributed import DistInfo
    from process.init_process import init_all
    from process.run_dir import prepare
    from process.sampler import ResumableSampler
    from process.teacher_cache import build_teacher_cache
    from process.train_process import train

    work = Path(tempfile.mkdtemp(prefix="fw_"))
    (work / "data").mkdir()
    (work / "data" / "train.tsv").write_text(Path(job["train"]).read_text(encoding="utf-8"), encoding="utf-8")
    path = work / "bench.config"
    path.write_text(config_text(job, work / "data", work / "run"))
    config = load_config(path, job.get("set", []))
    run = init_all(config, DistInfo(), "train")
    if job["mode"] == "same_batches":  # identical pre-padded batches, file order, through the same loop
        data = FixedBatches(fixed_batches(run.tokenizer, read_tsv(job["train"], job["examples"]), job["batch_size"]))
        sampler = ResumableSampler(data, 1, 0, False, job["seed"])
        run.loaders["train"] = DataLoader(data, batch_size=job["batch_size"], sampler=sampler, collate_fn=stack)
    prepare(str(work / "run"))
    start = time.perf_counter()
    build_teacher_cache(run)
    cache_s = time.perf_counter() - start
    clock = StepClock(run.optimizer, *dev_probe(job, run.model.student_model(), run.tokenizer), offset_s=cache_s)
    train(run, str(work / "run"))
    student = run.model.student_model()
    return finish(job, clock, student, run.tokenizer,
                  {"teacher_cache_s": round(cache_s, 2), "mean_padded_length": round(run.perf.mean_length() or 0, 2),
                   "teacher_cached": run.model.teacher_logits_cached,
                   "cls_only_last_layer": run.model.cls_only})
