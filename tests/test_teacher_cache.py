"""Teacher-logit cache: computed once before training, read by index every epoch, same as running the
teacher, rebuilt identically on resume."""
import json
import os
import random
import shutil

import pytest
import torch

from init.config import load_config
from process.checkpoint import load_checkpoint, manifest_of
from process.distributed import DistInfo
from process.init_process import init_all
from process.teacher_cache import teacher_logits
from utils.logging import get_logger
from tests.helpers import sealed_bytes, tiny_config_text
from tests.test_end_to_end import final_student, train_tiny


def kd_text(tiny_model, tiny_data, cache, cache_dir="", data=None, **train):
    return tiny_config_text(tiny_model, tiny_data, "kd", student={"num_layers": 1},
                            distill={"teacher": str(tiny_model), "temperature": 2.0, "cache_teacher": cache,
                                     "cache_dir": str(cache_dir)},
                            train={"epoch": 3, **train}, **({"data": data} if data else {}))


def count_teacher_calls(monkeypatch):
    from model.base import DistillModel
    calls = []
    original = DistillModel.run_teacher

    def counting(self, batch, hidden=False):
        if not self.teacher_logits_cached:
            calls.append(batch["index"].numel())
        return original(self, batch, hidden)
    monkeypatch.setattr(DistillModel, "run_teacher", counting)
    forward = DistillModel.teacher_forward

    def counting_forward(self, batch):
        calls.append(batch["index"].numel())
        return forward(self, batch)
    monkeypatch.setattr(DistillModel, "teacher_forward", counting_forward)
    return calls


def test_cached_logits_equal_the_teacher_on_each_example(tmp_path, tiny_model, tiny_data):
    path = tmp_path / "kd.config"
    path.write_text(kd_text(tiny_model, tiny_data, "true"))
    run = init_all(load_config(path), DistInfo(), "train")
    table = teacher_logits(run)
    assert table.shape == (48, 2)
    fmt = run.loaders["train"].collate_fn
    for i in (0, 17, 47):
        single = fmt([dict(run.datasets["train"][i], index=i)])
        assert torch.allclose(run.model.teacher_forward(single)[0], table[i], atol=1e-5)


def test_teacher_runs_once_per_example_not_once_per_epoch(tmp_path, tiny_model, tiny_data, monkeypatch):
    calls = count_teacher_calls(monkeypatch)
    train_tiny(tmp_path, "cached", kd_text(tiny_model, tiny_data, "true"))
    assert sum(calls) == 48  # 48 training examples, 3 epochs: one pass
    calls.clear()
    train_tiny(tmp_path, "uncached", kd_text(tiny_model, tiny_data, "false"))
    # the loop's three passes, then the efficiency report's measured step: the last batch again, on a copy
    assert sum(calls[:-1]) == 3 * 48 and calls[-1] == calls[-2]


def first_step_losses(logdir):
    return json.loads((logdir / "metrics.jsonl").read_text().splitlines()[0])


def test_cached_and_uncached_runs_see_the_same_soft_loss(tmp_path, tiny_model, tiny_data):
    _, a = train_tiny(tmp_path, "cached", kd_text(tiny_model, tiny_data, "true", max_steps=1))
    _, b = train_tiny(tmp_path, "uncached", kd_text(tiny_model, tiny_data, "false", max_steps=1))
    la, lb = first_step_losses(a), first_step_losses(b)
    assert la["step"] == lb["step"] == 1
    assert abs(la["loss_kd"] - lb["loss_kd"]) < 1e-5 and abs(la["loss"] - lb["loss"]) < 1e-5


@pytest.mark.parametrize("on_disk", [False, True])
def test_resume_with_cache_is_bitwise(tmp_path, tiny_model, tiny_data, on_disk):
    text = kd_text(tiny_model, tiny_data, "true", cache_dir=tmp_path / "logits" if on_disk else "", save_steps=4)
    _, full = train_tiny(tmp_path, "full", text)
    _, resumed = train_tiny(tmp_path, "resumed", text, checkpoint=str(full / "checkpoints" / "step-0000008.pt"))
    sa, sb = final_student(full), final_student(resumed)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def disk_run(tmp_path, text, name="kd.config"):
    path = tmp_path / name
    path.write_text(text)
    return init_all(load_config(path), DistInfo(), "train")


def test_disk_cache_runs_the_teacher_once_across_runs(tmp_path, tiny_model, tiny_data, monkeypatch):
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    first = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    assert sum(calls) == 48 and len(list(cache.glob("*.pt"))) == 1
    calls.clear()
    second = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    assert sum(calls) == 0 and torch.equal(first, second)  # read, not recomputed: bitwise the same table


def test_disk_cache_misses_when_the_teacher_or_its_inputs_change(tmp_path, tiny_model, tiny_data, monkeypatch):
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    calls.clear()
    shorter = disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache, data={"max_seq_length": 8}))
    teacher_logits(shorter)  # truncated inputs: other batches, another key
    assert sum(calls) == 48 and len(list(cache.glob("*.pt"))) == 2
    calls.clear()
    changed = disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache))
    with torch.no_grad():
        next(changed.model.teacher.parameters()).add_(0.01)  # retrained teacher, same path
    table = teacher_logits(changed)
    assert sum(calls) == 48 and len(list(cache.glob("*.pt"))) == 3
    fmt = changed.loaders["train"].collate_fn
    single = fmt([dict(changed.datasets["train"][5], index=5)])
    assert torch.allclose(changed.model.teacher_forward(single)[0], table[5], atol=1e-5)


def test_disk_cache_key_ignores_the_gold_labels(tmp_path, tiny_model, tiny_data, monkeypatch):
    """The teacher never reads labels: the same texts relabeled (or partly unlabeled) read the same table."""
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    first = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    flipped = tmp_path / "flipped"
    shutil.copytree(tiny_data, flipped)
    lines = (flipped / "train.tsv").read_text().splitlines()
    (flipped / "train.tsv").write_text("\n".join([lines[0]] + [f"{l[:-1]}{1 - int(l[-1])}" for l in lines[1:]]) + "\n")
    calls.clear()
    relabeled = disk_run(tmp_path, kd_text(tiny_model, flipped, "true", cache))
    assert relabeled.datasets["train"][0]["label"] != run_label(tiny_data, 0)
    assert torch.equal(teacher_logits(relabeled), first) and sum(calls) == 0


def run_label(data_dir, row):
    return int((data_dir / "train.tsv").read_text().splitlines()[row + 1][-1])


def test_damaged_disk_cache_is_recomputed_with_a_warning(tmp_path, tiny_model, tiny_data, monkeypatch, caplog):
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    first = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    (stored,) = cache.glob("*.pt")
    stored.write_bytes(stored.read_bytes()[:100])
    calls.clear()
    monkeypatch.setattr(get_logger(), "propagate", True)
    again = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    assert sum(calls) == 48 and torch.equal(first, again)
    assert any("unusable teacher-logit cache" in r.getMessage() for r in caplog.records)
    assert torch.equal(torch.load(stored, weights_only=True)["logits"], first)  # rewritten whole


def test_tinybert_prediction_reads_the_table_kd_wrote_for_the_same_teacher_and_rows(tmp_path, tiny_model, tiny_data,
                                                                                    monkeypatch):
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    first = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    calls.clear()
    text = tiny_config_text(tiny_model, tiny_data, "tinybert", student={"init_from": "teacher", "num_layers": 1},
                            distill={"teacher": str(tiny_model), "cache_dir": str(cache)}, tinybert={"stage": "prediction"})
    second = teacher_logits(disk_run(tmp_path, text, "tinybert.config"))
    assert sum(calls) == 0 and torch.equal(first, second)  # the key is the teacher's and the rows', not the method's


class _Boom:
    """Unpickling this would run code: the cache must refuse it, never run it."""

    def __reduce__(self):
        return (os.system, ("touch pwned-by-cache",))


DAMAGE = {  # what a disk, a copy or a hand can leave at a cache path (no sidecar beside it)
    "truncated": lambda data: data[:len(data) // 2],
    "random bytes": lambda data: random.Random(0).randbytes(len(data)),
    "code-running pickle": lambda data: sealed_bytes({"format": 1, "count": 48, "logits": _Boom()}),
    "wrong shape": lambda data: sealed_bytes({"format": 1, "count": 48, "logits": torch.zeros(5, 2)}),
    "not a dict": lambda data: sealed_bytes([1, 2, 3]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_any_damaged_disk_cache_is_recomputed_and_rewritten(tmp_path, tiny_model, tiny_data, monkeypatch, caplog, damage):
    monkeypatch.chdir(tmp_path)
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    first = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    (stored,) = cache.glob("*.pt")
    manifest_of(stored).unlink(missing_ok=True)
    stored.write_bytes(DAMAGE[damage](stored.read_bytes()))
    calls.clear()
    monkeypatch.setattr(get_logger(), "propagate", True)
    again = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    assert sum(calls) == 48 and torch.equal(first, again)
    # by record: caplog can hold one record twice once an earlier test has hooked its handler onto "kdw"
    warnings = list({id(r): r.getMessage() for r in caplog.records if "unusable teacher-logit cache" in r.getMessage()}.values())
    assert len(warnings) == 1 and "\n" not in warnings[0] and warnings[0].startswith(f"{stored}: ")
    assert torch.equal(load_checkpoint(stored)["logits"], first)  # rewritten, sealed
    assert not (tmp_path / "pwned-by-cache").exists()


def test_a_run_with_a_damaged_disk_cache_completes(tmp_path, tiny_model, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = kd_text(tiny_model, tiny_data, "true", cache_dir=tmp_path / "logits", max_steps=2)
    train_tiny(tmp_path, "first", text)
    (stored,) = (tmp_path / "logits").glob("*.pt")
    manifest_of(stored).unlink(missing_ok=True)
    stored.write_bytes(DAMAGE["code-running pickle"](b""))
    summary, _ = train_tiny(tmp_path, "second", text)
    assert summary["steps"] == 2 and load_checkpoint(stored)["logits"].shape == (48, 2)
    assert not (tmp_path / "pwned-by-cache").exists()


def test_a_warm_cache_gives_the_same_student_as_a_cold_one(tmp_path, tiny_model, tiny_data):
    """The same command twice into two log dirs, the second finding the teacher's logits on disk: the students are
    bitwise equal. (The teacher pass drew its DataLoader seed from the global RNG once per pass: a cold cache makes
    two passes, key and logits, a warm one only the key pass, so dropout then drew other masks.)"""
    cache = tmp_path / "logits"
    students = []
    for name in ("cold", "warm"):
        _, logdir = train_tiny(tmp_path, name, kd_text(tiny_model, tiny_data, "true", cache_dir=cache, epoch=1))
        students.append(final_student(logdir))
    assert len(list(cache.glob("*.pt"))) == 1
    assert students[0].keys() == students[1].keys() and all(torch.equal(students[0][k], students[1][k]) for k in students[0])


def reversed_vocab_copy(model_dir, dest):
    """The same weights with another vocabulary: the same words in another order (specials first, the words reversed)."""
    from tests.helpers import make_tokenizer
    shutil.copytree(model_dir, dest)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (dest / name).unlink(missing_ok=True)
    words = list(json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]) \
        if (model_dir / "tokenizer.json").is_file() else (model_dir / "vocab.txt").read_text().split()
    make_tokenizer(words[:5] + words[5:][::-1]).save_pretrained(dest)
    return dest


def test_disk_cache_misses_when_the_teacher_reads_another_tokenizer(tmp_path, tiny_model, tiny_data, monkeypatch):
    """The same teacher weights with another vocabulary (the same words in another order): other input ids, another
    key, so a table made for one tokenizer is never read for the other."""
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    other = reversed_vocab_copy(tiny_model, tmp_path / "teacher_other_vocab")
    calls.clear()
    run = disk_run(tmp_path, kd_text(other, tiny_data, "true", cache))
    teacher_logits(run)
    assert sum(calls) == 48 and len(list(cache.glob("*.pt"))) == 2


def test_a_student_with_another_tokenizer_reads_the_table_of_the_teachers_own_vocabulary(tmp_path, tiny_model,
                                                                                      tiny_data, monkeypatch):
    """The key covers what the teacher reads: a student whose vocabulary differs from the teacher's (its batches carry
    teacher_* ids beside its own) reads the table a same-vocabulary student's run wrote for that teacher."""
    calls, cache = count_teacher_calls(monkeypatch), tmp_path / "logits"
    first = teacher_logits(disk_run(tmp_path, kd_text(tiny_model, tiny_data, "true", cache)))
    student = reversed_vocab_copy(tiny_model, tmp_path / "student_other_vocab")
    text = tiny_config_text(student, tiny_data, "kd", student={"num_layers": 1},
                            distill={"teacher": str(tiny_model), "temperature": 2.0, "cache_teacher": "true",
                                     "cache_dir": str(cache)}, train={"epoch": 3})
    run = disk_run(tmp_path, text)
    batch = next(iter(run.loaders["train"]))
    assert "teacher_input_ids" in batch and not torch.equal(batch["teacher_input_ids"], batch["input_ids"])
    calls.clear()
    assert torch.equal(teacher_logits(run), first) and sum(calls) == 0
    assert len(list(cache.glob("*.pt"))) == 1
