"""Distilled-BiLSTM on sentence pairs: Tang et al. 2019's siamese model (section 3.1, Figure 2). One shared BiLSTM
encodes each sentence on its own into h1, h2 ([last forward state; last backward state]); the ReLU classifier reads
f(h1, h2) = [h1, h2, h1 * h2, |h1 - h2|]. Checked by hand against torch.nn.LSTM on each sentence alone, with the
formatter's two id sequences per pair, the single-sentence model unchanged bit for bit, and a pair run end to end
(train, export, reload, test path, predict.py)."""
import json
import random

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from formatter.word_vocab import WordVocab, WordVocabFormatter
from init.config import load_config, load_config_text
from init.word_vocab import build_word_vocab
from model.base import student_inputs
from model.parts.bilstm import BiLSTMClassifier
from process.distributed import DistInfo
from process.init_process import init_all
from process.test_process import run_test
from process.train_entry import train_run
from tests.helpers import FILLER, NEG, POS, tiny_config_text
from utils.errors import DataError

MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"


def write_tiny_pairs(path, n_train=32, n_dev=12, seed=0):
    """MRPC-layout TSVs: label 1 when both sentences carry a sentiment word of the same polarity."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)

    def sentence(polarity):
        words = rng.sample(FILLER, rng.randint(1, 6)) + [rng.choice(POS if polarity else NEG)]
        rng.shuffle(words)
        return " ".join(words)

    def rows(n):
        out = [MRPC_HEADER]
        for i in range(n):
            label, polarity = i % 2, rng.random() < 0.5
            out.append(f"{label}\t{2 * i}\t{2 * i + 1}\t{sentence(polarity)}\t{sentence(polarity == bool(label))}")
        return "\n".join(out) + "\n"

    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev), ("test.tsv", n_dev)):
        (path / name).write_text(rows(n))
    return path


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return write_tiny_pairs(tmp_path_factory.mktemp("pairs"))


def pair_text(model_dir, data_dir, name="distilled_bilstm", **sections):
    base = {"data": {"task": "MRPC", "formatter_type": "word_vocab"}, "bilstm": {"hidden_size": 8, "fc_size": 8},
            "distill": {"teacher": str(model_dir), "kd_loss": "mse", "soft_weight": 1.0, "hard_weight": 0.5},
            "train": {"epoch": 1, "save_steps": 2, "learning_rate": 1e-2}}
    if name == "bilstm":
        base["distill"] = {"teacher": ""}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return tiny_config_text(model_dir, data_dir, name, **base)


def tiny(pair, seed=0, **kwargs):
    torch.manual_seed(seed)
    size = dict(embedding_size=6, hidden_size=5, fc_size=4, dropout=0.3) | kwargs
    return BiLSTMClassifier(30, 3, pair=pair, **size).eval()


def padded(rows, width=None):
    width = width or max(map(len, rows))
    return torch.tensor([r + [0] * (width - len(r)) for r in rows]), torch.tensor([len(r) for r in rows])


def lstm_like(model):
    """A separate torch.nn.LSTM holding the model's LSTM weights: the reference encoder."""
    c = model.config
    lstm = nn.LSTM(c.embedding_size, c.hidden_size, num_layers=1, batch_first=True, bidirectional=True)
    lstm.load_state_dict(model.lstm.state_dict())
    return lstm.eval()


def sentence_vector(model, lstm, ids):
    """h of one sentence run ALONE (no padding): [last forward state; last backward state], Figure 1 (c, d)."""
    x = F.embedding(torch.tensor([ids]), model.embedding.weight)
    _, (h_n, _) = lstm(x)
    return torch.cat([h_n[0, 0], h_n[1, 0]])


def classifier(model, features):
    """The ReLU-activated classifier written out: W_out relu(W_fc f + b_fc) + b_out (dropout off in eval)."""
    hidden = torch.relu(features @ model.fc.weight.T + model.fc.bias)
    return hidden @ model.out.weight.T + model.out.bias


A = [[4, 5, 6, 7, 8], [9, 3], [11, 12, 13], [20]]
B = [[14, 15], [16, 17, 18, 19, 21, 22], [23], [24, 25, 26]]


# --- the model ------------------------------------------------------------------------------------

def test_siamese_logits_are_the_formula_on_each_sentence_alone():
    model = tiny(pair=True)
    (a, la), (b, lb) = padded(A), padded(B)
    with torch.no_grad():
        logits = model(a, la, b, lb).logits
        lstm = lstm_like(model)
        for i in range(len(A)):
            h1, h2 = sentence_vector(model, lstm, A[i]), sentence_vector(model, lstm, B[i])
            f = torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()])
            assert f.shape == (8 * model.config.hidden_size,)
            assert torch.allclose(logits[i], classifier(model, f), atol=1e-6)


def test_the_two_sentences_share_one_encoder():
    model = tiny(pair=True)
    assert [type(m) for m in model.modules() if isinstance(m, (nn.LSTM, nn.Embedding))] == [nn.Embedding, nn.LSTM]
    assert model.fc.in_features == 8 * model.config.hidden_size
    (a, la), (b, lb) = padded(A), padded(B)
    with torch.no_grad():
        h1, h2 = model.encode_pair(a, la, b, lb)
        g1, g2 = model.encode_pair(b, lb, a, la)  # swapped sides: the same vectors, swapped
        assert torch.allclose(h1, g2, atol=1e-6) and torch.allclose(h2, g1, atol=1e-6)
        assert torch.allclose(h2, model.encode(b, lb), atol=1e-6)
    # a loss on the second sentence alone trains the same LSTM weights the first one reads
    model.zero_grad()
    model.encode_pair(a, la, b, lb)[1].sum().backward()
    assert model.lstm.weight_ih_l0.grad.abs().sum() > 0 and model.embedding.weight.grad[B[0][0]].abs().sum() > 0
    assert model.embedding.weight.grad[A[0][0]].abs().sum() == 0  # a word only the first side has


def test_one_sides_padding_and_content_never_reach_the_other_side():
    model = tiny(pair=True)
    (a, la), (b, lb) = padded(A), padded(B)
    with torch.no_grad():
        h1, h2 = model.encode_pair(a, la, b, lb)
        wide_b, _ = padded(B, width=15)  # more padding on the second side only
        k1, k2 = model.encode_pair(a, la, wide_b, lb)
        assert torch.equal(k1, h1) and torch.equal(k2, h2)
        other_b, _ = padded([[w + 1 for w in r] for r in B])  # other words, same lengths
        assert torch.allclose(model.encode_pair(a, la, other_b, lb)[0], h1, atol=1e-6)
        together = model(a, la, b, lb).logits
        for i in range(len(A)):  # a padded batch gives each pair the logits it gets alone
            alone = model(torch.tensor([A[i]]), torch.tensor([len(A[i])]), torch.tensor([B[i]]), torch.tensor([len(B[i])]))
            assert torch.allclose(together[i], alone.logits[0], atol=1e-6)


def test_single_sentence_model_is_the_old_one_bit_for_bit():
    """The single-sentence model builds the same modules in the same order as before pairs existed (so the same
    initial weights under a seed) and computes the same ops: compared with the old class, written out here."""
    class OldBiLSTM(nn.Module):
        def __init__(self, vocab_size, num_labels, embedding_size, hidden_size, fc_size, dropout, pad_id=0):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
            self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=1, batch_first=True, bidirectional=True)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(2 * hidden_size, fc_size)
            self.out = nn.Linear(fc_size, num_labels)

        def forward(self, word_ids, word_lengths):
            packed = pack_padded_sequence(self.embedding(word_ids), word_lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
            sentence = self.dropout(torch.cat([h_n[0], h_n[1]], dim=-1))
            return self.out(self.dropout(torch.relu(self.fc(sentence))))

    new = tiny(pair=False, seed=3)
    torch.manual_seed(3)
    old = OldBiLSTM(30, 3, 6, 5, 4, 0.3).eval()
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state) and all(torch.equal(new_state[k], old_state[k]) for k in old_state)
    ids, lengths = padded(A)
    with torch.no_grad():
        assert torch.equal(new(ids, lengths).logits, old(ids, lengths))
        h = torch.stack([sentence_vector(new, lstm_like(new), r) for r in A])  # and the formula, by hand
        assert torch.allclose(new(ids, lengths).logits, classifier(new, h), atol=1e-6)
    new.train(), old.train()  # dropout draws the same masks from the same stream
    torch.manual_seed(7)
    a = new(ids, lengths).logits
    torch.manual_seed(7)
    assert torch.equal(a, old(ids, lengths))


def test_a_model_refuses_the_other_layout():
    (a, la), (b, lb) = padded(A), padded(B)
    with pytest.raises(ValueError, match="pair=True.*no second sentence"):
        tiny(pair=True)(a, la)
    with pytest.raises(ValueError, match="pair=False.*a second sentence"):
        tiny(pair=False)(a, la, b, lb)


# --- vocabulary and formatter ---------------------------------------------------------------------

def test_pair_tasks_give_a_pair_vocabulary_from_both_sentences(tiny_model, tiny_data, pair_data):
    vocab = build_word_vocab(load_config_text(pair_text(tiny_model, pair_data)))
    assert vocab.pairs and set(POS + NEG) <= set(vocab.words)
    single = build_word_vocab(load_config_text(pair_text(tiny_model, tiny_data, data={"task": "SST-2"})))
    assert not single.pairs


def test_formatter_yields_two_id_sequences_per_pair(tiny_model, pair_data):
    config = load_config_text(pair_text(tiny_model, pair_data, word_vocab={"max_length": 4}))
    vocab = WordVocab(["good", "film", "the", "bad", "plot", "w"], max_length=4, pairs=True)
    batch = WordVocabFormatter(config, "train", vocab)([
        {"text_a": "good film", "text_b": "the bad plot", "label": 1, "index": 0},
        {"text_a": "w w w w w w", "text_b": "", "label": 0, "index": 1}])
    v = vocab.stoi
    assert batch["word_ids"].tolist() == [[v["good"], v["film"], 0, 0], [v["w"]] * 4]  # each side cut to max_length
    assert batch["word_lengths"].tolist() == [2, 4]
    assert batch["b_word_ids"].tolist() == [[v["the"], v["bad"], v["plot"]], [vocab.unk_id, 0, 0]]  # its own padding
    assert batch["b_word_lengths"].tolist() == [3, 1]  # an empty sentence is one <unk>
    assert vocab.sep_id not in batch["word_ids"] and vocab.sep_id not in batch["b_word_ids"]
    assert set(student_inputs(batch)) == {"word_ids", "word_lengths", "b_word_ids", "b_word_lengths"}
    assert 1 in batch["teacher_token_type_ids"][0]  # the teacher still reads the pair as one BERT sequence


def test_formatter_names_a_row_of_the_wrong_layout(tiny_model, pair_data):
    config = load_config_text(pair_text(tiny_model, pair_data))
    pair_fmt = WordVocabFormatter(config, "test", WordVocab(["a"], pairs=True))
    with pytest.raises(DataError, match="example 5: has one text, but this run's BiLSTM student reads sentence pairs"):
        pair_fmt([{"text_a": "a", "text_b": None, "label": None, "index": 5}])
    single_fmt = WordVocabFormatter(config, "test", WordVocab(["a"]))
    with pytest.raises(DataError, match="dev-3: has two texts, but this run's BiLSTM student reads one text per row"):
        single_fmt([{"guid": "dev-3", "text_a": "a", "text_b": "a", "label": None, "index": 0}])


# --- end to end -----------------------------------------------------------------------------------

def test_pair_run_trains_exports_reloads_tests_and_predicts(tmp_path, tiny_model, pair_data):
    from predict import predict
    (tmp_path / "d.config").write_text(pair_text(tiny_model, pair_data))
    config = load_config(tmp_path / "d.config")
    summary = train_run(config, DistInfo(), str(tmp_path / "run"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert records and all({"loss_kd", "loss_hard"} <= set(r) for r in records)

    export = tmp_path / "run" / "student"
    student, vocab = BiLSTMClassifier.from_pretrained(export), WordVocab.from_pretrained(export)
    assert student.config.pair and vocab.pairs and json.loads((export / "config.json").read_text())["pair"] is True
    a, b = torch.tensor([vocab.encode("the good film")]), torch.tensor([vocab.encode("a fine story")])
    with torch.no_grad():
        exported = student(a, torch.tensor([a.shape[1]]), b, torch.tensor([b.shape[1]])).logits

    run = init_all(load_config(tmp_path / "d.config"), DistInfo(), "test", str(tmp_path / "run"))  # test.py's path
    (tmp_path / "retest").mkdir()
    assert run_test(run, str(tmp_path / "retest"))["metrics"] == summary["test"]["metrics"]

    names, probs = predict(str(tmp_path / "run"), [("the good film", "a fine story"), ("bad plot", "dull acting")])
    assert names == ["not_equivalent", "equivalent"] and probs.shape == (2, 2)  # MRPC's 0, 1 as GLUE names them
    assert torch.allclose(probs[0], exported.softmax(-1)[0], atol=1e-6)  # predict.py reads the best student
    with pytest.raises(DataError, match="has one text"):
        predict(str(tmp_path / "run"), [("only one sentence", None)])


def test_the_twin_builds_the_same_siamese_student(tiny_model, pair_data):
    from init.registry import model_list
    config_a = load_config_text(pair_text(tiny_model, pair_data, model={"num_labels": 2}))
    config_b = load_config_text(pair_text(tiny_model, pair_data, "bilstm", model={"num_labels": 2}))
    a = model_list["distilled_bilstm"](config_a, word_vocab=build_word_vocab(config_a)).student
    b = model_list["bilstm"](config_b, word_vocab=build_word_vocab(config_b)).student
    assert a.config.pair and b.config.pair
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
