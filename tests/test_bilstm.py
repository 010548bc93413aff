"""Distilled-BiLSTM: word vocabulary, padding-invariant BiLSTM, the loss by hand, end-to-end training with
exact resume, export/reload, the test path, the no-teacher twin, bad configs and Tang's augmentation."""
import json
import random

import pytest
import torch

from formatter.word_vocab import WordVocab, WordVocabFormatter, tokenize
from init.word_vocab import build_word_vocab
from init.config import load_config, load_config_text
from model.base import student_inputs, teacher_inputs
from model.parts.bilstm import BiLSTMClassifier, wordpiece_mean_init
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.init_process import init_all
from process.test_process import run_test
from process.train_entry import train_run
from tests.helpers import REPO, make_tokenizer, tiny_config_text
from tools.augment_tang import tang_augment, tang_augment_many
from utils.errors import ConfigError


def bl_text(model_dir, data_dir, name="distilled_bilstm", **sections):
    base = {"data": {"formatter_type": "word_vocab"}, "bilstm": {"hidden_size": 16, "fc_size": 16},
            "distill": {"teacher": str(model_dir), "kd_loss": "mse", "soft_weight": 1.0, "hard_weight": 0.5},
            "train": {"epoch": 2, "save_steps": 3, "learning_rate": 1e-2}}
    if name == "bilstm":
        base["distill"] = {"teacher": ""}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return tiny_config_text(model_dir, data_dir, name, **base)


def config_of(model_dir, data_dir, name="distilled_bilstm", **sections):
    return load_config_text(bl_text(model_dir, data_dir, name, **sections))


# --- vocabulary and formatter -------------------------------------------------------------------

def test_tokenize_lowercases_and_splits_words_contractions_punctuation():
    assert tokenize("It's a DON'T-miss [MASK] film , does n't!") == \
        ["it's", "a", "don't", "-", "miss", "[mask]", "film", ",", "does", "n't", "!"]


def test_vocab_orders_by_count_then_alphabet_caps_size_and_maps_unknowns():
    texts = ["b a c", "a b d", "c a e", "[MASK] zz"]  # a:3, b:2, c:2, d/e/zz:1; [mask] never a word
    vocab = WordVocab.build(texts, size=4)
    assert vocab.itos == ["<pad>", "<unk>", "<sep>", "a", "b", "c", "d"] and len(vocab) == 7
    assert vocab.encode("A e [mask] b") == [3, 1, 1, 4]  # e was cut by the size cap; [MASK] is <unk>
    assert vocab.encode("b c") == [4, 5] and vocab.encode("") == [1] and vocab.sep_id == 2  # <sep> keeps its id


def test_max_length_cuts_each_text_to_32_words():
    vocab = WordVocab.build(["w"], size=10)
    assert len(vocab.encode("w " * 50)) == 32  # each sentence of a pair too (tests/test_bilstm_siamese.py)


def test_vocab_comes_from_the_training_split_only(tmp_path, tiny_model):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nb a\t0\na c\t1\nnever seen\t0\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ndevword a\t0\n")
    (tmp_path / "aug.tsv").write_text("sentence\tlabel\naugword augword augword\t0\n")
    config = config_of(tiny_model, tmp_path, data={"test_file": "dev.tsv", "max_examples": 2, "use_aug": "true",
                                                   "aug_file": str(tmp_path / "aug.tsv")}, word_vocab={"vocab_size": 2})
    vocab = build_word_vocab(config)
    assert vocab.words == ["a", "b"]  # max_examples applies; augmented rows and other splits are not counted
    test_run = init_all(config, DistInfo(), "test")
    assert test_run.loaders["test"].collate_fn.tokenizer.itos == vocab.itos  # rebuilt identically in test mode


def test_formatter_batch_has_student_and_teacher_inputs(tiny_model, tiny_data):
    config = config_of(tiny_model, tiny_data)
    fmt = WordVocabFormatter(config, "train", build_word_vocab(config))
    examples = [{"text_a": "good film", "text_b": None, "label": 1, "index": 0},
                {"text_a": "the movie was bad", "text_b": None, "label": 0, "index": 1}]
    batch = fmt(examples)
    v = fmt.tokenizer.stoi
    assert batch["word_ids"].tolist() == [[v["good"], v["film"], 0, 0], [v["the"], v["movie"], v["was"], v["bad"]]]
    assert batch["word_lengths"].tolist() == [2, 4] and batch["labels"].tolist() == [1, 0] and batch["index"].tolist() == [0, 1]
    assert batch["teacher_input_ids"].shape == (2, 6)  # [CLS] the movie was bad [SEP]
    assert set(student_inputs(batch)) == {"word_ids", "word_lengths"}
    assert set(teacher_inputs(batch)) == {"input_ids", "attention_mask", "token_type_ids"}
    twin_config = config_of(tiny_model, tiny_data, "bilstm")
    twin = WordVocabFormatter(twin_config, "train", build_word_vocab(twin_config))(examples)
    assert not any(k.startswith("teacher_") for k in twin)


def test_student_inputs_of_an_hf_batch_are_unchanged():
    batch = {"input_ids": 1, "attention_mask": 2, "token_type_ids": 3, "labels": 4, "index": 5, "teacher_input_ids": 6}
    assert student_inputs(batch) == {"input_ids": 1, "attention_mask": 2, "token_type_ids": 3}


# --- the BiLSTM ---------------------------------------------------------------------------------

def test_padding_does_not_change_logits():
    torch.manual_seed(0)
    model = BiLSTMClassifier(20, 3, embedding_size=8, hidden_size=6, fc_size=5, dropout=0.5).eval()
    rows = [[4, 5, 6, 7, 8], [9, 3], [11, 12, 13]]
    padded = torch.tensor([r + [0] * (5 - len(r)) for r in rows])
    together = model(padded, torch.tensor([len(r) for r in rows])).logits
    for i, r in enumerate(rows):
        alone = model(torch.tensor([r]), torch.tensor([len(r)])).logits
        assert torch.allclose(together[i], alone[0], atol=1e-6)
    padded_more = torch.cat([padded, torch.zeros(3, 4, dtype=torch.long)], dim=1)  # extra padding columns
    assert torch.allclose(model(padded_more, torch.tensor([5, 2, 3])).logits, together, atol=1e-6)


def test_wordpiece_mean_init_by_hand():
    tok = make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "gre", "##at", "film"])
    table = torch.arange(7 * 2, dtype=torch.float).reshape(7, 2)
    vocab = WordVocab(["great", "film", "qqq"])
    weight = torch.empty(len(vocab), 2)
    torch.manual_seed(0)
    wordpiece_mean_init(weight, vocab, table, tok)
    assert weight[0].tolist() == [0.0, 0.0]  # <pad>
    assert weight[1].tolist() == [2.0, 3.0] and weight[2].tolist() == [6.0, 7.0]  # <unk> <- [UNK], <sep> <- [SEP]
    assert weight[3].tolist() == [(8 + 10) / 2, (9 + 11) / 2]  # great = mean(gre, ##at)
    assert weight[4].tolist() == [12.0, 13.0]  # film
    assert not any(torch.equal(weight[5], row) for row in table)  # unspellable: random


def test_twin_starts_from_identical_weights(tiny_model, tiny_data):
    from init.registry import model_list
    config_a = config_of(tiny_model, tiny_data, model={"num_labels": 2})
    config_b = config_of(tiny_model, tiny_data, "bilstm", model={"num_labels": 2})
    a = model_list["distilled_bilstm"](config_a, word_vocab=build_word_vocab(config_a)).student.state_dict()
    b = model_list["bilstm"](config_b, word_vocab=build_word_vocab(config_b)).student.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_is_soft_mse_plus_hard_ce_by_hand(tiny_model, tiny_data):
    run = init_all(config_of(tiny_model, tiny_data, distill={"soft_weight": 0.7, "hard_weight": 0.3}), DistInfo(), "train")
    model = run.model.eval()  # no dropout, so the recomputation below sees the same logits
    batch = next(iter(run.loaders["train"]))
    model.training = True  # take the training branch (with the teacher) while dropout stays off
    out = model(batch)
    with torch.no_grad():
        s = model.student(batch["word_ids"], batch["word_lengths"]).logits
        t = model.teacher(input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"],
                          token_type_ids=batch["teacher_token_type_ids"]).logits
    mse = ((s - t) ** 2).sum() / s.numel()
    ce = -torch.log_softmax(s, -1)[torch.arange(len(s)), batch["labels"]].mean()
    assert out["loss_kd"].item() == pytest.approx(mse.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((0.7 * mse + 0.3 * ce).item(), rel=1e-5)


# --- end to end ---------------------------------------------------------------------------------

def test_distilled_bilstm_trains_resumes_exports_and_tests(tmp_path, tiny_model, tiny_data):
    (tmp_path / "d.config").write_text(bl_text(tiny_model, tiny_data))
    config = load_config(tmp_path / "d.config")
    summary = train_run(config, DistInfo(), str(tmp_path / "full"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert len(records) == 12 and all({"loss_kd", "loss_hard"} <= set(r) for r in records)
    assert records[-1]["loss_kd"] < records[0]["loss_kd"] / 5  # it learns the teacher's logits
    results = json.loads((tmp_path / "full" / "results.json").read_text())
    assert results["params"] == summary["params"] and "speedup_vs_teacher" in results and results["latency_ms"] > 0

    train_run(load_config(tmp_path / "d.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a = load_checkpoint(checkpoints_in(tmp_path / "full")[-1])["student"]
    b = load_checkpoint(checkpoints_in(tmp_path / "resumed")[-1])["student"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    export = tmp_path / "full" / "student"
    student, vocab = BiLSTMClassifier.from_pretrained(export), WordVocab.from_pretrained(export)
    best = load_checkpoint(tmp_path / "full" / "checkpoints" / "best.pt")["student"]
    assert all(torch.equal(student.state_dict()[k], best[k]) for k in best)
    assert vocab.itos == build_word_vocab(config).itos
    ids = torch.tensor([vocab.encode("good film")])
    assert student(ids, torch.tensor([ids.shape[1]])).logits.shape == (1, 2)

    run = init_all(load_config(tmp_path / "d.config"), DistInfo(), "test", str(tmp_path / "full"))  # test.py's path
    (tmp_path / "retest").mkdir()
    again = run_test(run, str(tmp_path / "retest"))
    assert run.checkpoint.endswith("best.pt") and again["metrics"] == summary["test"]["metrics"]


def test_twin_trains_on_labels_without_teacher_inputs(tmp_path, tiny_model, tiny_data):
    (tmp_path / "t.config").write_text(bl_text(tiny_model, tiny_data, "bilstm", train={"epoch": 1}))
    summary = train_run(load_config(tmp_path / "t.config"), DistInfo(), str(tmp_path / "twin"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "twin" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert all("loss_kd" not in r and "loss_hard" in r for r in records) and summary["teacher_params"] is None
    assert (tmp_path / "twin" / "student" / "vocab.json").is_file()


# --- bad configs --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,sections,message", [
    ("distilled_bilstm", {"data": {"formatter_type": "hf_tokenizer"}},
     r"<text>:\d+: \[data\] formatter_type = hf_tokenizer: model 'distilled_bilstm' reads word ids; set word_vocab"),
    ("bilstm", {"bilstm": {"embedding_init": "teacher"}},
     r"<text>:\d+: \[bilstm\] embedding_init = teacher: model 'bilstm' has no teacher; use pretrained or random"),
    ("bilstm", {"bilstm": {"embedding_size": 50}},
     r"<text>:\d+: \[bilstm\] embedding_size = 50: embedding_init = pretrained gives 32-wide vectors; use 0 or 32"),
    ("bilstm", {"word_vocab": {"vocab_size": 0}}, r"<text>:\d+: \[word_vocab\] vocab_size = 0: out of range, expected >= 1"),
    ("bilstm", {"bilstm": {"dropout": 1.5}}, r"<text>:\d+: \[bilstm\] dropout = 1.5: out of range, expected >= 0, < 1"),
])
def test_bad_configs_fail_before_work_with_one_line(tmp_path, tiny_model, tiny_data, name, sections, message):
    with pytest.raises(ConfigError, match=message):
        init_all(config_of(tiny_model, tiny_data, name, **sections), DistInfo(), "train")


def test_random_init_uses_embedding_size(tiny_model, tiny_data):
    from model.parts.bilstm import build_bilstm
    config = config_of(tiny_model, tiny_data, "bilstm", bilstm={"embedding_init": "random"})
    vocab = build_word_vocab(config)
    assert build_bilstm(config, 2, vocab).embedding.weight.shape == (len(vocab), 300)


def test_shipped_twin_configs_differ_from_distilled_only_in_the_teacher():
    for task in ("SST-2", "MRPC", "RTE"):
        a = load_config(REPO / "config" / "glue" / task / "distilled_bilstm.config")
        b = load_config(REPO / "config" / "glue" / task / "bilstm_baseline.config")
        diff = {k for k in a.values if a.values[k] != b.values[k] and k != ("config", "base")}
        assert diff == {("model", "model_name"), ("distill", "teacher")}
        assert (a.get("data", "formatter_type"), a.get("distill", "kd_loss"), a.get("word_vocab", "max_length")) == \
            ("word_vocab", "mse", 32)


# --- Tang's augmentation ------------------------------------------------------------------------

class ScriptedRng:
    """Hands out the given random() and randint() values in order (to check the rules by hand)."""

    def __init__(self, floats, ints=()):
        self.floats, self.ints = list(floats), list(ints)

    def random(self):
        return self.floats.pop(0)

    def randint(self, a, b):
        value = self.ints.pop(0)
        assert a <= value <= b
        return value


def test_tang_masking_and_ngram_rules_by_hand():
    # per word: 0.05 < p_mask masks "movie"; then 0.2 < p_ng samples a 3-gram starting at word 1
    rng = ScriptedRng([0.5, 0.05, 0.9, 0.3, 0.7, 0.2], ints=[3, 1])
    assert tang_augment("the movie was very good", rng) == "[MASK] was very"
    assert tang_augment("the movie was", ScriptedRng([0.5, 0.5, 0.5, 0.9])) == "the movie was"  # no rule fired
    assert tang_augment("a b", ScriptedRng([0.5, 0.5, 0.1], ints=[5])) == "a b"  # n >= length keeps it whole
    assert tang_augment("a b c", random.Random(0), p_mask=1.0, p_ng=0.0) == "[MASK] [MASK] [MASK]"
    with pytest.raises(ValueError):
        tang_augment("a", random.Random(0), p_mask=2.0)


def test_tang_augment_many_is_distinct_seeded_and_never_the_original():
    sentence = "the movie was very good and the plot was fun"
    first = tang_augment_many(sentence, random.Random(3), n_iter=20)
    assert first == tang_augment_many(sentence, random.Random(3), n_iter=20)
    assert 0 < len(first) <= 20 and len(set(first)) == len(first) and sentence not in first
    words = set(sentence.split()) | {"[MASK]"}
    assert all(set(t.split()) <= words for t in first)
