"""Pieces every benchmark job shares: the data, the models, the batches, step timing, peak RSS and dev accuracy.

Every tool gets the same teacher, the same initial student (saved once by run.py), the same first N SST-2
training examples, batch size, optimizer (AdamW, BERT no-decay groups), linear LR decay and grad clipping."""
import csv
import resource
import statistics
import time

import torch

MAX_LEN = 64  # fixed length of TextBrewer's examples and of the "same batches" mode


def read_tsv(path, n=0):
    """(sentence, label) rows of an SST-2 style TSV with a header; the first n (0 = all)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        a, lab = header.index("sentence"), header.index("label")
        for fields in reader:
            rows.append((fields[a], int(fields[lab])))
            if n and len(rows) >= n:
                break
    return rows


def load_models(job):
    """(teacher, student, tokenizer) from the paths in the job; teacher frozen in eval mode."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    teacher = AutoModelForSequenceClassification.from_pretrained(job["teacher"])
    teacher.eval().requires_grad_(False)
    student = AutoModelForSequenceClassification.from_pretrained(job["student"])
    return teacher, student, AutoTokenizer.from_pretrained(job["student"])


def encode(tokenizer, rows, padding, max_length=MAX_LEN):
    enc = tokenizer([r[0] for r in rows], padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    batch = dict(enc)
    batch["labels"] = torch.tensor([r[1] for r in rows], dtype=torch.long)
    return batch


def fixed_batches(tokenizer, rows, batch_size):
    """The "same batches" mode: rows in file order, padded to MAX_LEN, cut into batches."""
    enc = encode(tokenizer, rows, "max_length")
    return [{k: v[i:i + batch_size] for k, v in enc.items()} for i in range(0, len(rows), batch_size)]


def no_decay_groups(model, weight_decay=0.01):
    decay, rest = [], []
    for name, p in model.named_parameters():
        (rest if p.ndim == 1 or "LayerNorm" in name or name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def linear_decay(total):
    return lambda step: max(0.0, (total - step) / max(1, total))


class StepClock:
    """Timestamps after every optimizer step (a post-step hook, so it times any loop the same way).

    With a `probe` (a callable returning dev accuracy) it measures the student every `probe_every` steps and
    takes the probe's own time off the clock, so windows and time-to-target count training only."""

    def __init__(self, optimizer, probe=None, probe_every=0, offset_s=0.0):
        self.paused = 0.0
        self.times = [time.perf_counter()]
        self.offset_s = offset_s  # seconds spent before the loop that training depends on (the teacher cache)
        self.probe, self.every, self.curve = probe, probe_every, []  # curve: [step, train seconds, dev acc]
        optimizer.register_step_post_hook(lambda *_: self._tick())

    def _tick(self):
        now = time.perf_counter() - self.paused
        self.times.append(now)
        step = len(self.times) - 1
        if self.probe is not None and self.every and step % self.every == 0:
            start = time.perf_counter()
            acc = self.probe()
            self.paused += time.perf_counter() - start
            self.curve.append([step, round(self.offset_s + now - self.times[0], 2), acc])

    def windows(self, warmup, window, batch_size):
        """examples/s of each full window of `window` steps after the first `warmup` steps."""
        t = self.times  # t[0] = clock start, t[k] = end of optimizer step k (probe time removed)
        out = []
        for start in range(max(1, warmup), len(t) - window, window):
            out.append(window * batch_size / (t[start + window] - t[start]))
        return out

    def time_to(self, target):
        """Training seconds (cache build included) until the first probe at or above `target` dev accuracy."""
        for step, seconds, acc in self.curve:
            if acc >= target:
                return seconds, step
        return None, None


def median(values):
    return round(statistics.median(values), 2) if values else None


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@torch.inference_mode()
def dev_accuracy(student, tokenizer, rows, batch_size=64):
    """Accuracy of the student on the dev rows (dynamic padding, eval mode)."""
    was = student.training
    student.eval()
    correct = 0
    for i in range(0, len(rows), batch_size):
        batch = encode(tokenizer, rows[i:i + batch_size], "longest", 128)
        labels = batch.pop("labels")
        correct += int((student(**batch).logits.argmax(-1) == labels).sum())
    student.train(was)
    return round(100.0 * correct / max(1, len(rows)), 2)


def kd_terms(s_out, t_out, mask, hidden, pairs):
    """KL(teacher || student) at T=1 plus (when hidden) the summed masked hidden MSE over the layer pairs:
    the plain loop's loss, written out here rather than imported, as a user of plain PyTorch would."""
    import torch.nn.functional as F
    loss = F.kl_div(F.log_softmax(s_out.logits, -1), F.softmax(t_out.logits, -1), reduction="batchmean")
    if hidden:
        m = mask.unsqueeze(-1).to(s_out.logits.dtype)
        for s, t in pairs:
            diff = (s_out.hidden_states[s] - t_out.hidden_states[t]).pow(2) * m
            loss = loss + diff.sum() / (m.sum() * diff.shape[-1])
    return loss


def mean_length(batches, steps):
    """Mean padded length of the batches the first `steps` steps use (cycled like the loops do)."""
    return round(sum(batches[i % len(batches)]["input_ids"].shape[1] for i in range(steps)) / max(1, steps), 2)


def dev_probe(job, student, tokenizer):
    """(probe, every): dev accuracy of the student every job['probe_every'] steps (None when not asked)."""
    every = job.get("probe_every", 0)
    if not every or not job.get("dev"):
        return None, 0
    rows = read_tsv(job["dev"])
    return (lambda: dev_accuracy(student, tokenizer, rows)), every


def finish(job, clock, student, tokenizer, extra=None):
    """The job's result dict (written as JSON by worker.py)."""
    rows = read_tsv(job["dev"]) if job.get("dev") else []
    windows = clock.windows(job["warmup"], job["window"], job["batch_size"])
    train_s = clock.times[-1] - clock.times[0]
    result = {"examples_per_s": median(windows), "windows": [round(w, 2) for w in windows],
              "steps": len(clock.times) - 1, "train_s": round(train_s, 2),
              "end_to_end_examples_per_s": round((len(clock.times) - 1) * job["batch_size"] / (clock.offset_s + train_s), 2),
              "peak_rss_mb": peak_rss_mb(), "dev_accuracy": dev_accuracy(student, tokenizer, rows) if rows else None,
              "dev_curve": clock.curve}
    if job.get("target_acc") is not None:
        result["target_acc"] = job["target_acc"]
        result["time_to_target_s"], result["steps_to_target"] = clock.time_to(job["target_acc"])
    result.update(extra or {})
    return result
