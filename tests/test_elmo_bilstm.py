"""The ELMo path (elmo_lm, then elmo_bilstm / elmo_bilstm_cls): the biLM loss written out by hand, ELMo's scalar mix
by its formula, tied embeddings, padding, the WikiText reader, bad configs in one line, and a tiny end-to-end run of
the shipped quickstart configs (LM stage, then the task stage from its export)."""
import json
import math
import re

import pytest
import torch
from torch.nn import functional as F

from dataset.wikitext import read_wikitext
from formatter.word_vocab import WordVocab
from init.config import load_config, load_config_text
from init.registry import model_list
from init.word_vocab import build_word_vocab
from model.parts.bilm import BiLM, ScalarMix
from model.parts.elmo_student import ElmoBiLSTMClassifier
from process.checkpoint import load_checkpoint
from process.distributed import DistInfo
from process.init_process import init_all
from process.train_entry import train_run
from tests.helpers import REPO
from utils.errors import ConfigError

SMALL = {"embedding_size": 6, "lstm_size": 10, "num_layers": 2, "dropout": 0.0}


def lm_text(data_dir, **sections):
    """A tiny elmo_lm run over the tiny SST-2 data (labels unused) with the word_lm formatter and lm evaluator."""
    base = {"data": {"root": str(data_dir), "train_file": "train.tsv", "valid_file": "dev.tsv", "test_file": "test.tsv",
                     "formatter_type": "word_lm", "group_by_length": "false"},
            "model": {"model_name": "elmo_lm"}, "elmo": dict(SMALL),
            "train": {"epoch": 1, "batch_size": 8, "learning_rate": 1e-2, "logging_steps": 1},
            "eval": {"batch_size": 8, "latency_batches": 0, "evaluator": "lm"}, "output": {"tensorboard": "false"},
            "distill": {"cache_dir": ""}}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return "\n".join(f"[{s}]\n" + "\n".join(f"{k} = {v}" for k, v in kv.items()) for s, kv in base.items()) + "\n"


def lstmp_by_hand(lstm, xs):
    """One direction of one LSTM layer with projection, step by step (torch's gate order i, f, g, o)."""
    w_ih, w_hh, b = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0
    w_hr = getattr(lstm, "weight_hr_l0", None)
    h = torch.zeros(w_hh.shape[1])
    c = torch.zeros(w_ih.shape[0] // 4)
    out = []
    for x in xs:
        i, f, g, o = (w_ih @ x + w_hh @ h + b).chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        h = w_hr @ h if w_hr is not None else h
        out.append(h)
    return torch.stack(out)


def direction_by_hand(bilm, lstms, seq):
    """Top states of one direction's stack over the token list `seq` (layer 2 adds its input: ELMo's residual)."""
    x = bilm.embedding.weight[seq]
    h1 = lstmp_by_hand(lstms[0], x)
    return lstmp_by_hand(lstms[1], h1) + h1


# --- the biLM ------------------------------------------------------------------------------------

def test_bilm_loss_is_forward_plus_backward_nll_by_hand(tiny_data):
    run = init_all(load_config_text(lm_text(tiny_data)), DistInfo(), "train")
    batch = next(iter(run.loaders["train"]))
    out = run.model.train()(batch)
    bilm, sep = run.model.student, run.word_vocab.sep_id
    E, b = bilm.embedding.weight, bilm.softmax_bias
    f_terms, b_terms = [], []
    with torch.no_grad():
        for ids, n in zip(batch["word_ids"].tolist(), batch["word_lengths"].tolist()):
            seq = [sep] + ids[:n] + [sep]  # <S> w1 .. wn </S>
            top = direction_by_hand(bilm, bilm.forward_lstms, seq)
            log_p = torch.log_softmax(top @ E.T + b, -1)
            f_terms += [-log_p[t, seq[t + 1]] for t in range(n + 1)]  # next word, </S> included
            rev = seq[::-1]
            top = direction_by_hand(bilm, bilm.backward_lstms, rev)
            log_p = torch.log_softmax(top @ E.T + b, -1)
            b_terms += [-log_p[t, rev[t + 1]] for t in range(n + 1)]  # previous word, <S> included
    forward_nll, backward_nll = torch.stack(f_terms).mean(), torch.stack(b_terms).mean()
    assert out["loss_forward"].item() == pytest.approx(forward_nll.item(), rel=1e-5)
    assert out["loss_backward"].item() == pytest.approx(backward_nll.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((forward_nll + backward_nll).item(), rel=1e-5)
    assert len(f_terms) == int(batch["word_lengths"].sum()) + len(batch["word_lengths"])  # n + 1 per row, padding out

    run.model.eval()
    stats = run.model(batch)["logits"]  # what the lm evaluator reads: per row [summed NLL, correct, predictions]
    assert stats[:, 2].tolist() == [2.0 * (n + 1) for n in batch["word_lengths"].tolist()]
    assert stats[:, 0].sum().item() == pytest.approx((torch.stack(f_terms).sum() + torch.stack(b_terms).sum()).item(), rel=1e-5)


def test_scalar_mix_is_gamma_times_softmax_weighted_layers():
    torch.manual_seed(0)
    mix = ScalarMix(3)
    layers = [torch.randn(2, 4, 6) for _ in range(3)]
    assert torch.allclose(mix(layers), (layers[0] + layers[1] + layers[2]) / 3)  # starts even, gamma 1
    with torch.no_grad():
        mix.scalars.copy_(torch.tensor([0.3, -1.0, 2.0]))
        mix.gamma.fill_(0.7)
    e = [math.exp(0.3), math.exp(-1.0), math.exp(2.0)]
    expected = 0.7 * (e[0] * layers[0] + e[1] * layers[1] + e[2] * layers[2]) / sum(e)
    assert torch.allclose(mix(layers), expected, atol=1e-6)


def test_elmo_layers_are_embedding_twice_then_both_directions_without_boundaries():
    torch.manual_seed(0)
    bilm = BiLM(12, 4, 6, 2, 0.0).eval()
    layers = bilm.layers(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    x = bilm.embedding.weight[[5, 6, 7]]
    assert len(layers) == 3 and torch.equal(layers[0][0], torch.cat([x, x], -1))
    with torch.no_grad():
        top_f = direction_by_hand(bilm, bilm.forward_lstms, [2, 5, 6, 7, 2])[1:4]
        top_b = direction_by_hand(bilm, bilm.backward_lstms, [2, 7, 6, 5, 2])[1:4].flip(0)
    assert torch.allclose(layers[2][0], torch.cat([top_f, top_b], -1), atol=1e-6)


def test_softmax_weight_is_the_embedding_table():
    torch.manual_seed(0)
    bilm = BiLM(12, 4, 6, 2, 0.0)
    assert bilm.output_weight() is bilm.embedding.weight
    assert [k for k, v in bilm.state_dict().items() if v.shape == (12, 4)] == ["embedding.weight"]  # one table
    states = torch.randn(3, 4)
    before = bilm.lm_logits(states)
    with torch.no_grad():
        bilm.embedding.weight[9] += 1.0
    after = bilm.lm_logits(states)
    assert torch.allclose(after[:, 9] - before[:, 9], states.sum(-1), atol=1e-6)  # the softmax row moved with it
    p = bilm(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    sum(F.cross_entropy(logits, t) for logits, t in ((p.forward_logits, p.forward_targets),
                                                    (p.backward_logits, p.backward_targets))).backward()
    assert bilm.embedding.weight.grad[9].abs().sum() > 0  # word 9 is no input: its gradient comes through the softmax


def test_padding_does_not_change_the_real_tokens_loss():
    torch.manual_seed(0)
    bilm = BiLM(20, 4, 6, 2, 0.0).eval()
    rows = [[4, 5, 6, 7, 8], [9, 3], [11, 12, 13]]
    width = 8  # more padding columns than the longest row needs
    padded = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    together = bilm(padded, torch.tensor([len(r) for r in rows]))
    for i, r in enumerate(rows):
        alone = bilm(torch.tensor([r]), torch.tensor([len(r)]))
        mine = together.rows == i
        assert torch.allclose(together.forward_logits[mine], alone.forward_logits, atol=1e-6)
        assert torch.allclose(together.backward_logits[mine], alone.backward_logits, atol=1e-6)
        assert torch.equal(together.forward_targets[mine], alone.forward_targets)
    with torch.no_grad():
        layers = bilm.layers(padded, torch.tensor([len(r) for r in rows]))
        alone = bilm.layers(torch.tensor([rows[1]]), torch.tensor([2]))
    assert all(torch.allclose(a[1, :2], b[0], atol=1e-6) for a, b in zip(layers, alone))


def test_wikitext_reader_drops_headings_and_splits_sentences(tmp_path):
    (tmp_path / "valid.txt").write_text(" \n = Title = \n \n The cat @-@ like <unk> sat . It ran 2 @,@ 000 m . \n"
                                        " = = Part = = \n A third one !\n")
    rows = read_wikitext(tmp_path / "valid.txt")
    assert [r["text_a"] for r in rows] == ["The cat-like [MASK] sat .", "It ran 2,000 m .", "A third one !"]
    assert WordVocab(["the", "cat"]).encode(rows[0]["text_a"])[3] == WordVocab.unk_id  # WikiText's <unk> is ours


# --- configs ------------------------------------------------------------------------------------

def task_text(data_dir, teacher, bilm_dir, name="elmo_bilstm", **sections):
    values = {"data": {"formatter_type": "word_vocab"}, "word_vocab": {"source": "pretrained"},
              "model": {"model_name": name, "pretrained": str(bilm_dir)},
              "distill": {"teacher": str(teacher) if name == "elmo_bilstm" else "", "kd_loss": "mse"},
              "bilstm": {"hidden_size": 8, "fc_size": 8}}
    for section, extra in sections.items():
        values.setdefault(section, {}).update(extra)
    return lm_text(data_dir, **values)


@pytest.fixture(scope="module")
def bilm_export(tmp_path_factory, tiny_data):
    """A biLM export as the elmo_lm stage leaves it (no training needed for the config checks)."""
    config = load_config_text(lm_text(tiny_data))
    vocab = build_word_vocab(config)
    path = tmp_path_factory.mktemp("bilm")
    model_list["elmo_lm"](config, word_vocab=vocab).export(str(path), vocab)
    return path


@pytest.mark.parametrize("kind,sections,message", [
    ("lm", {"elmo": {"lstm_size": 4}},
     r"<text>:\d+: \[elmo\] lstm_size = 4: below embedding_size = 6 \(each LSTM's cells are projected down to the "
     r"embedding width\); use at least 6"),
    ("lm", {"data": {"formatter_type": "word_vocab"}},
     r"<text>:\d+: \[data\] formatter_type = word_vocab: model 'elmo_lm' reads language-model batches; set word_lm"),
    ("lm", {"elmo": {"dropout": 1.5}}, r"<text>:\d+: \[elmo\] dropout = 1.5: out of range, expected >= 0, < 1"),
    ("task", {"word_vocab": {"source": "train"}},
     r"<text>:\d+: \[word_vocab\] source = train: model 'elmo_bilstm' reads the words its biLM was trained on; set pretrained"),
    ("task", {"model": {"pretrained": "{bert}"}},  # a BERT folder, not a biLM export
     r"<text>:\d+: \[word_vocab\] source = pretrained: \[model\] pretrained = {bert} has no vocab.json "
     r"\(a word-level export, e.g. of the elmo_lm stage\)"),
    ("task", {"word_vocab": {"source": "pretrain"}},
     r"<text>:\d+: \[word_vocab\] source = 'pretrain': expected one of train, pretrained"),
])
def test_bad_configs_fail_with_one_line(tiny_data, tiny_model, bilm_export, kind, sections, message):
    sections = {s: {k: str(v).replace("{bert}", str(tiny_model)) for k, v in kv.items()} for s, kv in sections.items()}
    message = message.replace("{bert}", re.escape(str(tiny_model)))
    text = lm_text(tiny_data, **sections) if kind == "lm" else task_text(tiny_data, tiny_model, bilm_export, **sections)
    with pytest.raises(ConfigError) as err:
        init_all(load_config_text(text), DistInfo(), "train")
    assert "\n" not in str(err.value)
    assert re.fullmatch(message, str(err.value)), str(err.value)


def test_a_word_level_export_that_is_no_bilm_is_named(tmp_path, tiny_data, tiny_model, bilm_export):
    import shutil
    other = tmp_path / "tang"
    shutil.copytree(bilm_export, other)
    meta = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(meta, model_type="kdw_bilstm")))  # e.g. a distilled_bilstm export
    with pytest.raises(ConfigError) as err:
        init_all(load_config_text(task_text(tiny_data, tiny_model, other)), DistInfo(), "train")
    assert re.fullmatch(r"<text>:\d+: " + re.escape(f"[model] pretrained = {other}: {other}: not a kdw_bilm export "
                        "(model_type kdw_bilstm), not a biLM of the elmo_lm stage; train one with "
                        "config/general/elmo_lm.config"), str(err.value)), str(err.value)


def test_student_and_twin_start_identical_and_the_bilm_is_frozen(tiny_data, tiny_model, bilm_export):
    built = {}
    for name in ("elmo_bilstm", "elmo_bilstm_cls"):
        config = load_config_text(task_text(tiny_data, tiny_model, bilm_export, name, model={"num_labels": 2}))
        built[name] = model_list[name](config, word_vocab=build_word_vocab(config)).train()
    a, b = (built[n].student.state_dict() for n in built)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    student = built["elmo_bilstm"].student
    exported = BiLM.from_pretrained(bilm_export).state_dict()
    assert all(torch.equal(student.bilm.state_dict()[k], exported[k]) for k in exported)
    assert not student.bilm.training and not any(p.requires_grad for p in student.bilm.parameters())
    assert torch.equal(student.embedding.weight, student.bilm.embedding.weight)  # x_k starts as the biLM's table
    assert student.embedding.weight is not student.bilm.embedding.weight  # ... a copy the task trains


def test_finetune_bilm_trains_it_and_frozen_keeps_it_out_of_the_graph():
    bilm = {"vocab_size": 20, "embedding_size": 4, "lstm_size": 6, "num_layers": 2, "dropout": 0.1}
    ids, lengths = torch.tensor([[4, 5, 6]]), torch.tensor([3])
    for finetune in (False, True):
        torch.manual_seed(0)
        model = ElmoBiLSTMClassifier(bilm, 2, hidden_size=5, fc_size=5, finetune_bilm=finetune).train()
        model(ids, lengths).logits.sum().backward()
        assert model.bilm.training == finetune and model.mix.scalars.grad is not None
        assert all((p.grad is not None) == finetune for p in model.bilm.parameters() if p is not model.bilm.softmax_bias)


def test_siamese_elmo_student_reads_each_sentence_alone():
    torch.manual_seed(0)
    bilm = {"vocab_size": 20, "embedding_size": 4, "lstm_size": 6, "num_layers": 2, "dropout": 0.0}
    model = ElmoBiLSTMClassifier(bilm, 1, hidden_size=5, fc_size=5, pair=True).eval()
    a, b = torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([[9, 0], [10, 11]])
    out = model(a, torch.tensor([3, 2]), b, torch.tensor([1, 2])).logits
    alone = model(torch.tensor([[7, 8]]), torch.tensor([2]), torch.tensor([[10, 11]]), torch.tensor([2])).logits
    assert out.shape == (2, 1) and torch.allclose(out[1], alone[0], atol=1e-6)


def test_shipped_configs():
    lm = load_config(REPO / "config" / "general" / "elmo_lm.config")
    assert (lm.get("model", "model_name"), lm.get("data", "formatter_type"), lm.get("eval", "evaluator"),
            lm.get("data", "valid_dataset_type"), lm.get("elmo", "num_layers")) == ("elmo_lm", "word_lm", "lm", "wikitext", 2)
    for task in ("SST-2", "STS-B"):
        a = load_config(REPO / "config" / "glue" / task / "elmo_bilstm.config")
        b = load_config(REPO / "config" / "glue" / task / "elmo_bilstm_baseline.config")
        assert (a.get("model", "pretrained"), a.get("word_vocab", "source"), a.get("distill", "kd_loss"),
                a.get("elmo", "finetune_bilm"), a.get("data", "task")) == ("runs/general/elmo_lm", "pretrained", "mse", False, task)
        diff = {k for k in a.values if a.values[k] != b.values[k] and k != ("config", "base")}
        assert diff == {("model", "model_name"), ("distill", "teacher")}


# --- end to end: the quickstart pair, shrunk -----------------------------------------------------

def test_lm_stage_then_task_stage_from_its_export(tmp_path, tiny_model):
    quick = REPO / "config" / "quickstart"
    shrink = ["data.max_examples=48", "train.max_steps=3", "train.logging_steps=1", "eval.batch_size=50",
              "output.tensorboard=false", "distill.cache_dir="]
    lm = load_config(quick / "elmo_lm.config", shrink + ["elmo.embedding_size=8", "elmo.lstm_size=12"])
    lm_summary = train_run(lm, DistInfo(), str(tmp_path / "lm"))
    valid = [json.loads(l) for l in (tmp_path / "lm" / "metrics.jsonl").read_text().splitlines() if '"split"' in l]
    assert lm_summary["steps"] == 3 and valid and valid[-1]["lm_perplexity"] > 1 and valid[-1]["predicted_tokens"] > 100
    export = tmp_path / "lm" / "student"
    assert json.loads((export / "config.json").read_text())["model_type"] == "kdw_bilm"
    lm_words = WordVocab.from_pretrained(export).itos

    task = load_config(quick / "elmo_bilstm.config", shrink + [f"model.pretrained={tmp_path / 'lm'}",
                                                                f"distill.teacher={tiny_model}", "eval.latency_batches=2"])
    summary = train_run(task, DistInfo(), str(tmp_path / "task"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "task" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert summary["steps"] == 3 and all("loss_kd" in r for r in records) and "accuracy" in summary["test"]["metrics"]
    assert WordVocab.from_pretrained(tmp_path / "task" / "student").itos == lm_words  # the biLM's words, not SST-2's
    trained = load_checkpoint(tmp_path / "task" / "checkpoints" / "best.pt")["student"]
    pretrained = BiLM.from_pretrained(export).state_dict()
    assert all(torch.equal(trained["bilm." + k], v) for k, v in pretrained.items())  # frozen biLM
    assert not torch.equal(trained["mix.scalars"], torch.zeros(3))  # the mix learned
    student = ElmoBiLSTMClassifier.from_pretrained(tmp_path / "task" / "student")
    ids = torch.tensor([WordVocab.from_pretrained(export).encode("what a lovely film")])
    assert student(ids, torch.tensor([ids.shape[1]])).logits.shape == (1, 2)
