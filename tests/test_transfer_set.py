"""Unlabeled transfer sets ([data] transfer_file, tools/transfer_set.py): rows join the training split without
labels, the teacher labels them through the logit cache, methods with a teacher's soft target accept them (the hard
term then averages over the labeled rows), and methods without one refuse them."""
import importlib.util
import subprocess
import sys

import pytest
import torch

from init.config import load_config
from process.distributed import DistInfo
from process.init_process import init_all
from process.teacher_cache import teacher_logits
from tests.helpers import REPO, tiny_config_text
from tests.test_end_to_end import train_tiny
from utils.errors import ConfigError, DataError

spec = importlib.util.spec_from_file_location("transfer_set", REPO / "tools" / "transfer_set.py")
transfer_set = importlib.util.module_from_spec(spec)
spec.loader.exec_module(transfer_set)


def write_transfer(path, n=20):
    path.write_text("text_a\n" + "".join(f"some words number {i} here\n" for i in range(n)))
    return path


def kd_config(tmp_path, tiny_model, tiny_data, transfer, hard_weight=0.0, model="kd"):
    path = tmp_path / f"{model}_{hard_weight}.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data, model, student={"num_layers": 1},
                                     data={"transfer_file": str(transfer)},
                                     distill={"teacher": str(tiny_model), "hard_weight": hard_weight}))
    return path


def test_transfer_rows_join_the_training_split_unlabeled_and_the_teacher_labels_them(tmp_path, tiny_model, tiny_data):
    transfer = write_transfer(tmp_path / "transfer.tsv")
    run = init_all(load_config(kd_config(tmp_path, tiny_model, tiny_data, transfer)), DistInfo(), "train")
    train = run.datasets["train"]
    assert len(train) == 48 + 20 and [train[i]["label"] for i in (47, 48, 67)] == [1, None, None]
    assert train[48]["text_a"] == "some words number 0 here" and len(run.datasets["valid"]) == 16  # train only
    table = teacher_logits(run)
    single = run.loaders["train"].collate_fn([dict(train[60], index=60)])
    assert "labels" not in single
    assert torch.allclose(run.model.teacher_forward(single)[0], table[60], atol=1e-5)


def test_kd_trains_on_labeled_and_transfer_rows(tmp_path, tiny_model, tiny_data):
    transfer = write_transfer(tmp_path / "transfer.tsv")
    text = kd_config(tmp_path, tiny_model, tiny_data, transfer).read_text()
    summary, logdir = train_tiny(tmp_path, "kd_transfer", text)
    assert summary["steps"] == 2 * 9  # ceil(68 / 8) batches per epoch, 2 epochs
    assert (logdir / "student" / "config.json").is_file()


def test_a_model_without_a_teacher_refuses_a_transfer_file(tmp_path, tiny_model, tiny_data):
    transfer = write_transfer(tmp_path / "transfer.tsv")
    path = kd_config(tmp_path, tiny_model, tiny_data, transfer, 0.0, "bert_cls")
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if l.startswith("transfer_file"))
    with pytest.raises(ConfigError) as err:
        init_all(load_config(path), DistInfo(), "train")
    assert str(err.value) == (f"{path}:{line}: [data] transfer_file rows have no labels, but model 'bert_cls' learns "
                              "from gold labels only (kd-family methods and TinyBERT read them: the teacher labels them)")


def test_kd_with_hard_labels_uses_them_on_the_labeled_rows_of_a_mixed_batch(tmp_path, tiny_model, tiny_data):
    transfer = write_transfer(tmp_path / "transfer.tsv")
    run = init_all(load_config(kd_config(tmp_path, tiny_model, tiny_data, transfer, hard_weight=0.5)), DistInfo(),
                   "train")
    train, model = run.datasets["train"], run.model
    rows = [dict(train[i], index=i) for i in (3, 50, 7, 60)]  # two labeled, two transfer rows
    batch = run.loaders["train"].collate_fn(rows)
    gold = [train[3]["label"], train[7]["label"]]
    assert batch["labels"].tolist() == [gold[0], -100, gold[1], -100]
    model.train()
    out = model(batch)
    log_p = torch.log_softmax(out["logits"].detach().double(), -1)
    hand_ce = -(log_p[0, gold[0]] + log_p[2, gold[1]]) / 2  # the mean over the two labeled rows only
    assert out["loss_hard"].item() == pytest.approx(hand_ce.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(out["loss_kd"].item() + 0.5 * hand_ce.item(), rel=1e-5)


def test_a_transfer_file_without_the_task_columns_names_its_line(tmp_path, tiny_model, tiny_data):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\nfoo\n")
    with pytest.raises(DataError, match=r"bad.tsv:1: a SST-2 transfer file needs a header with columns \['text_a'\]"):
        init_all(load_config(kd_config(tmp_path, tiny_model, tiny_data, bad)), DistInfo(), "train")
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("text_a\nfoo\nbar\tbaz\n")
    with pytest.raises(DataError, match=r"ragged.tsv:3: expected 1 columns, got 2"):
        init_all(load_config(kd_config(tmp_path, tiny_model, tiny_data, ragged)), DistInfo(), "train")
    with pytest.raises(DataError, match=r"transfer_file = .*missing.tsv: .* does not exist"):
        init_all(load_config(kd_config(tmp_path, tiny_model, tiny_data, tmp_path / "missing.tsv")), DistInfo(), "train")


def glue_pairs(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


def test_transfer_set_tool_drops_evaluation_texts_and_duplicates(tmp_path):
    qqp = glue_pairs(tmp_path / "qqp.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                     [("1", "1", "2", "How are you?", "How do you do?", "1"),
                      ("2", "3", "4", "how are  YOU?", "how do you do?", "0"),  # the same pair, normalised
                      ("3", "5", "6", "Leaked dev sentence .", "Other words", "0"),
                      ("4", "7", "8", "Fine question", "Fine answer", "1")])
    dev = glue_pairs(tmp_path / "dev.tsv", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                     [("1", "9", "10", "leaked DEV sentence .", "Something else", )])
    out = tmp_path / "out" / "mrpc.tsv"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "transfer_set.py"), "--task", "MRPC", "--output", str(out),
                           "--sources", f"QQP:{qqp}", "--exclude", str(dev)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "text_a\ttext_b\nHow are you?\tHow do you do?\nFine question\tFine answer\n"
    assert f"QQP:{qqp}: 2 rows" in proc.stdout
    assert [p.name for p in out.parent.iterdir()] == ["mrpc.tsv"]  # no temporary file left


def test_single_sentence_tasks_take_every_sentence_and_pair_tasks_refuse_text_files(tmp_path):
    qqp = glue_pairs(tmp_path / "qqp.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                     [("1", "1", "2", "First?", "Second?", "1")])
    lines = tmp_path / "wiki.txt"
    lines.write_text("A wiki line.\nFirst?\n")
    rows, counts, pair = transfer_set.build("SST-2", [f"QQP:{qqp}", f"text:{lines}"], [])
    assert rows == [("First?", None), ("Second?", None), ("A wiki line.", None)] and not pair
    with pytest.raises(ConfigError, match="a text file has single sentences; the target task needs pairs"):
        transfer_set.build("MRPC", [f"text:{lines}"], [])
