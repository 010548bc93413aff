"""TinyBERT: layer map, the transformer-layer loss recomputed by hand (with a known width projection),
teacher attention scores against eager attention, the three stages through the real train path (exact
resume with the projection heads, general -> intermediate -> prediction hand-off), the configs, and the
augmentation tool."""
import json
import math
import random
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from model.parts.layer_map import tinybert_layer_map
from model.parts.loss import soft_loss
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.init_process import init_all
from process.train_entry import train_run
from tests.helpers import FILLER, NEG, POS, REPO, make_tokenizer, tiny_config_text, write_tiny_model
from utils.errors import ConfigError, DataError


# ------------------------------------------------------------------ layer map and the prediction loss
@pytest.mark.parametrize("n,m,expected", [(6, 2, [2, 5]), (12, 4, [2, 5, 8, 11]), (4, 2, [1, 3]), (6, 4, [0, 2, 3, 5]),
                                          (6, 6, [0, 1, 2, 3, 4, 5]), (6, 1, [5])])
def test_uniform_layer_map_is_m_times_n_over_m(n, m, expected):
    assert tinybert_layer_map(n, m) == expected  # 0-based: student layer m (1-based) <- teacher layer m*N/M


def test_layer_map_errors_list_the_layers():
    assert tinybert_layer_map(6, 2, [1, 4]) == [1, 4]
    with pytest.raises(ConfigError) as err:
        tinybert_layer_map(6, 2, [1, 6])
    assert str(err.value) == "[tinybert] teacher_layers: layer 6 out of range; the teacher has layers 0..5"
    with pytest.raises(ConfigError) as err:
        tinybert_layer_map(6, 2, [1, 2, 3])
    assert str(err.value) == ("[tinybert] teacher_layers = 1,2,3: 3 entries for a 2-layer student; give one teacher layer "
                              "per student layer (the teacher has layers 0..5)")
    with pytest.raises(ConfigError) as err:
        tinybert_layer_map(4, 6)
    assert str(err.value) == ("[student] num_layers = 6: the teacher has layers 0..3, a uniform map needs a student no "
                              "deeper; set [tinybert] teacher_layers explicitly")


def test_soft_cross_entropy_by_hand():
    # T = 2: teacher [0, 2] -> softmax([0, 1]) = [1/(1+e), e/(1+e)]; student [2, 0] -> log_softmax([1, 0])
    e = math.e
    p = [1 / (1 + e), e / (1 + e)]
    log_q = [1 - math.log(e + 1), -math.log(e + 1)]
    expected = -(p[0] * log_q[0] + p[1] * log_q[1])
    got = soft_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]]), "ce", 2.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)  # no T^2 factor (TinyBERT's L_pred)


# ------------------------------------------------------------------ the transformer-layer loss by hand
@pytest.fixture(scope="module")
def teacher4(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tb_teacher4"), layers=4, dropout=0.0)


def inter_text(teacher, data, tinybert=None, student=None, **train):
    """Intermediate stage: a random 2-layer student half the teacher's width (16 vs 32), same head count."""
    return tiny_config_text(teacher, data, "tinybert", data={"valid_file": ""},
                            student=dict({"init_from": "config", "num_layers": 2, "hidden_size": 16,
                                          "num_attention_heads": 2}, **(student or {})),
                            distill={"teacher": str(teacher)}, tinybert=dict({"stage": "intermediate"}, **(tinybert or {})),
                            train=dict({"epoch": 2, "save_steps": 3}, **train))


def build(tmp_path, text, name="t.config"):
    (tmp_path / name).write_text(text)
    return init_all(load_config(tmp_path / name), DistInfo(), "train")


def manual_scores(layer, hidden_in, heads):
    """q k^T / sqrt(d) per head from the layer's own query/key weights."""
    att = layer.attention.self
    q = hidden_in @ att.query.weight.T + att.query.bias
    k = hidden_in @ att.key.weight.T + att.key.bias
    b, length, width = q.shape
    q = q.view(b, length, heads, width // heads).transpose(1, 2)
    k = k.view(b, length, heads, width // heads).transpose(1, 2)
    return q @ k.transpose(-1, -2) / math.sqrt(width // heads)


def test_transformer_loss_by_hand_with_known_projection(tmp_path, teacher4, tiny_data):
    run = build(tmp_path, inter_text(teacher4, tiny_data, {"embedding_weight": 0.5, "hidden_weight": 2.0,
                                                           "attention_weight": 3.0}))
    model = run.model.train()
    assert model.layer_map == [1, 3] and model.proj_hidden is not model.proj_embedding
    with torch.no_grad():  # known W_h, W_e (student 16 -> teacher 32)
        model.proj_hidden.weight.copy_(torch.linspace(-1, 1, 32 * 16).view(32, 16))
        model.proj_hidden.bias.fill_(0.1)
        model.proj_embedding.weight.copy_(torch.linspace(1, -1, 32 * 16).view(32, 16))
        model.proj_embedding.bias.fill_(-0.2)
    batch = next(iter(run.loaders["train"]))
    assert (batch["attention_mask"] == 0).any()  # padding present, so masking is exercised
    with torch.no_grad():
        out = model(batch)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        s = model.student(**inputs, output_hidden_states=True)
        t = model.teacher(**inputs, output_hidden_states=True)
    mask = batch["attention_mask"].float()

    def mse(a, b):
        return (((a - b) ** 2).mean(-1) * mask).sum() / mask.sum()

    wh, bh, we, be = torch.linspace(-1, 1, 512).view(32, 16), 0.1, torch.linspace(1, -1, 512).view(32, 16), -0.2
    emb = mse(s.hidden_states[0] @ we.T + be, t.hidden_states[0])
    hid = sum(mse(s.hidden_states[i + 1] @ wh.T + bh, t.hidden_states[g + 1]) for i, g in enumerate([1, 3]))
    pair = mask[:, None, :, None] * mask[:, None, None, :]
    s_layers, t_layers = model.student.bert.encoder.layer, model.teacher.bert.encoder.layer
    att = sum((((manual_scores(s_layers[i], s.hidden_states[i], 2) - manual_scores(t_layers[g], t.hidden_states[g], 2))
                ** 2) * pair).sum() / (pair.sum() * 2) for i, g in enumerate([1, 3]))
    assert out["loss_emb"].item() == pytest.approx(emb.item(), rel=1e-5)
    assert out["loss_hidden"].item() == pytest.approx(hid.item(), rel=1e-5)
    assert out["loss_att"].item() == pytest.approx(att.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((0.5 * emb + 2.0 * hid + 3.0 * att).item(), rel=1e-5)


def test_teacher_scores_are_the_pre_softmax_of_eager_attention(tmp_path, teacher4, tiny_data):
    from pretrained.loading import load_classifier
    model = build(tmp_path, inter_text(teacher4, tiny_data)).model
    batch = next(iter(build(tmp_path, inter_text(teacher4, tiny_data)).loaders["train"]))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    _, scores = model.run_teacher_features(batch, [0, 3])
    eager = load_classifier(str(teacher4), "test", attn_implementation="eager").eval()
    with torch.no_grad():
        probs = eager(**inputs, output_attentions=True).attentions
    keys = batch["attention_mask"][:, None, None, :] == 0
    for got, layer in zip(scores, [0, 3]):
        assert torch.allclose(got.masked_fill(keys, float("-inf")).softmax(-1), probs[layer], atol=1e-6)


def test_shared_projection_is_one_matrix_and_equal_widths_need_none(tmp_path, teacher4, tiny_data):
    shared = build(tmp_path, inter_text(teacher4, tiny_data, {"share_projection": "true"})).model
    assert shared.proj_embedding is shared.proj_hidden
    assert sum(p.numel() for n, p in shared.named_parameters() if not n.startswith("student.")) == 32 * 16 + 32
    same = build(tmp_path, inter_text(teacher4, tiny_data, student={"init_from": "teacher", "hidden_size": 0})).model
    assert same.heads_state() == {}


@pytest.mark.parametrize("change,message", [
    ({"student": {"num_attention_heads": 4}},
     "[student] num_attention_heads = 4: TinyBERT's attention loss compares heads one to one and the teacher has 2; "
     "use 2 heads or set [tinybert] attention_weight = 0"),
    ({"tinybert": {"embedding_weight": 0, "hidden_weight": 0, "attention_weight": 0}},
     "[tinybert] stage = intermediate: embedding_weight, hidden_weight and attention_weight are all 0; nothing to distil"),
    ({"tinybert": {"teacher_layers": "0,9"}},
     "[tinybert] teacher_layers: layer 9 out of range; the teacher has layers 0..3"),
])
def test_bad_config_errors_are_exact(tmp_path, teacher4, tiny_data, change, message):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, inter_text(teacher4, tiny_data, change.get("tinybert"), change.get("student")))
    assert str(err.value) == message


def test_teacher_with_another_vocabulary_is_refused(tmp_path, teacher4, tiny_data):
    from pretrained.loading import load_tokenizer
    other = write_tiny_model(tmp_path / "other", layers=4)
    words = [w for w, _ in sorted(load_tokenizer(str(other)).get_vocab().items(), key=lambda kv: kv[1])]
    make_tokenizer(words[:5] + ["extra"] + words[5:]).save_pretrained(other)  # every word id shifted by one
    text = inter_text(teacher4, tiny_data).replace(f"teacher = {teacher4}", f"teacher = {other}")
    with pytest.raises(ConfigError) as err:
        build(tmp_path, text)
    assert str(err.value) == ("[distill] teacher: TinyBERT compares states token by token, so teacher and student must "
                              "share one tokenizer; their vocabularies differ")


def test_validation_split_is_refused_before_the_task_head_is_trained(tmp_path, teacher4, tiny_data):
    text = inter_text(teacher4, tiny_data).replace("valid_file = \n", "valid_file = dev.tsv\n")
    with pytest.raises(ConfigError) as err:
        build(tmp_path, text)
    assert str(err.value) == (f"{tmp_path / 't.config'}:4: [data] valid_file: [tinybert] stage = intermediate trains no "
                              "task head, so there is nothing to validate; leave it empty (the final student is exported)")


# ------------------------------------------------------------------ stages through the real train path
def test_intermediate_trains_saves_projection_and_resumes_exactly(tmp_path, teacher4, tiny_data):
    (tmp_path / "i.config").write_text(inter_text(teacher4, tiny_data))
    train_run(load_config(tmp_path / "i.config"), DistInfo(), str(tmp_path / "full"))
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all({"loss_emb", "loss_hidden", "loss_att"} <= set(r) for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    ckpt = load_checkpoint(checkpoints_in(tmp_path / "full")[-1])
    assert ckpt["heads"]["proj_hidden.weight"].shape == (32, 16) and "proj_embedding.bias" in ckpt["heads"]
    train_run(load_config(tmp_path / "i.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    resumed = load_checkpoint(checkpoints_in(tmp_path / "resumed")[-1])
    for part in ("student", "heads"):
        assert ckpt[part].keys() == resumed[part].keys()
        assert all(torch.equal(ckpt[part][k], resumed[part][k]) for k in ckpt[part])
    from transformers import AutoModelForSequenceClassification
    export = AutoModelForSequenceClassification.from_pretrained(tmp_path / "full" / "student")
    assert export.config.hidden_size == 16 and not any("proj" in k for k in export.state_dict())


@pytest.fixture(scope="module")
def chain(tmp_path_factory, teacher4, tiny_data):
    """general (unlabeled text, encoder teacher) -> intermediate -> prediction, as one pipeline."""
    from transformers import AutoModel, AutoTokenizer
    from process.pipeline import run_pipeline
    root = tmp_path_factory.mktemp("tb_chain")
    AutoModel.from_pretrained(teacher4).save_pretrained(root / "encoder")  # the "pretrained" teacher: no task head
    AutoTokenizer.from_pretrained(teacher4).save_pretrained(root / "encoder")
    rng = random.Random(0)
    (root / "wiki.txt").write_text("\n".join(" ".join(rng.sample(POS + NEG + FILLER, 7)) for _ in range(24)) + "\n\n")
    (root / "general.config").write_text(tiny_config_text(
        root / "encoder", root, "tinybert",
        data={"train_dataset_type": "text_lines", "train_file": "wiki.txt", "valid_file": "", "test_file": ""},
        student={"init_from": "config", "num_layers": 2, "hidden_size": 16, "num_attention_heads": 2},
        distill={"teacher": str(root / "encoder")}, tinybert={"stage": "general"}, train={"epoch": 1}))
    (root / "inter.config").write_text(tiny_config_text(
        teacher4, tiny_data, "tinybert", data={"valid_file": ""}, student={"init_from": "pretrained"},
        distill={"teacher": str(teacher4)}, tinybert={"stage": "intermediate"}, train={"epoch": 1}))
    (root / "pred.config").write_text(tiny_config_text(
        teacher4, tiny_data, "tinybert", student={"init_from": "pretrained"},
        distill={"teacher": str(teacher4), "temperature": 2.0}, tinybert={"stage": "prediction"}, train={"epoch": 2}))
    (root / "chain.config").write_text(
        "[pipeline]\nstages = general, intermediate, prediction\n[stage.general]\nconfig = general.config\n"
        "[stage.intermediate]\nconfig = inter.config\ninit_from = general\n"
        "[stage.prediction]\nconfig = pred.config\ninit_from = intermediate\ndo_test = true\n")
    summaries = run_pipeline(root / "chain.config", DistInfo(), str(root / "runs"))
    return root, summaries


def test_general_stage_exports_an_encoder_the_task_stage_loads(chain):
    from transformers import AutoConfig, AutoModel
    root, summaries = chain
    general = root / "runs" / "general"
    assert summaries["general"]["best_metric"] is None and summaries["general"]["steps"] == 3
    records = [json.loads(l) for l in (general / "metrics.jsonl").read_text().splitlines()]
    assert all({"loss_emb", "loss_hidden", "loss_att"} <= set(r) and "split" not in r for r in records)
    assert AutoConfig.from_pretrained(general / "student").architectures == ["BertModel"]
    encoder = AutoModel.from_pretrained(general / "student")
    assert encoder.config.hidden_size == 16
    assert "proj_hidden.weight" in load_checkpoint(general / "checkpoints" / "best.pt")["heads"]
    # the intermediate stage started from the general student (init_from), a classifier with its encoder
    assert f"pretrained = {general / 'student'}" in (root / "runs" / "intermediate" / "config.ini").read_text()
    assert summaries["intermediate"]["params"] == summaries["prediction"]["params"] > summaries["general"]["params"]


def test_prediction_stage_trains_with_soft_ce_and_tests(chain):
    root, summaries = chain
    pred = root / "runs" / "prediction"
    records = [json.loads(l) for l in (pred / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "split" not in r]
    assert all("loss_kd" in r and "loss_emb" not in r for r in train) and train[-1]["loss"] < train[0]["loss"]
    results = json.loads((pred / "results.json").read_text())
    assert 0.0 <= results["metrics"]["accuracy"] <= 1.0 and results["params"] < results["teacher_params"]


def test_prediction_loss_is_soft_ce_plus_weighted_hard(tmp_path, teacher4, tiny_data):
    run = build(tmp_path, tiny_config_text(teacher4, tiny_data, "tinybert",
                                           student={"init_from": "teacher", "num_layers": 2},
                                           distill={"teacher": str(teacher4), "temperature": 3.0, "hard_weight": 0.25},
                                           tinybert={"stage": "prediction"}))
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    with torch.no_grad():
        out = model(batch)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        s, t = model.student(**inputs).logits, model.teacher(**inputs).logits
    ce_soft = -(F.softmax(t / 3, -1) * F.log_softmax(s / 3, -1)).sum(-1).mean()
    hard = F.cross_entropy(s, batch["labels"])
    assert out["loss_kd"].item() == pytest.approx(ce_soft.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((ce_soft + 0.25 * hard).item(), rel=1e-5)
    # only this stage may read cached teacher logits; the others need the teacher's inner states every step
    assert model.caches_teacher_logits and not build(tmp_path, inter_text(teacher4, tiny_data)).model.caches_teacher_logits


def test_shipped_tinybert_configs_load():
    from process.pipeline import parse_pipeline, stage_config
    for task in ("SST-2", "MRPC", "RTE"):
        folder = REPO / "config" / "glue" / task
        for name in ("tinybert_intermediate", "tinybert_prediction", "tinybert_baseline"):
            config = load_config(folder / f"{name}.config")
            assert config.get("data", "task") == task and config.get("student", "num_layers") in (0, 2)
        stages = parse_pipeline(folder / "tinybert.config")
        assert [n for n, _ in stages] == ["intermediate", "prediction"]
        inter = stage_config(folder / "tinybert.config", *stages[0], "runs/x", [], handoff=False)
        assert inter.get("tinybert", "stage") == "intermediate" and inter.get("data", "valid_file") == ""
    general = load_config(REPO / "config" / "general" / "tinybert_general.config")
    assert general.get("tinybert", "stage") == "general" and general.get("data", "train_dataset_type") == "text_lines"


# ------------------------------------------------------------------ tools/augment.py
@pytest.fixture(scope="module")
def mlm(tmp_path_factory):
    """A tiny random BertForMaskedLM over the helpers' words plus two suffix pieces (so 'films' is two pieces)."""
    from transformers import BertConfig, BertForMaskedLM
    path = tmp_path_factory.mktemp("tb_mlm")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + FILLER + ["##s", "##ly"]
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64)).save_pretrained(path)
    make_tokenizer(vocab).save_pretrained(path)
    return path


def sst_rows(tmp_path, n=30, seed=0):
    """SST-2 TSV whose first word is the row number (digits: never replaced), to trace copies to sources."""
    rng = random.Random(seed)
    rows = [f"{i} " + " ".join(rng.sample(POS + NEG + FILLER, 8)) + " films" + f"\t{rng.randint(0, 1)}" for i in range(n)]
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return path


def augment(*args):
    from tools.augment import main
    return main([str(a) for a in args])


def test_augment_writes_wellformed_deterministic_rows_with_source_labels(tmp_path, mlm):
    from tools.augment import STOP_WORDS, eligible, words_of
    src = sst_rows(tmp_path)
    source = {line.split(" ")[0]: line for line in src.read_text().splitlines()[1:]}
    out = augment("--task", "SST-2", "--input", src, "--mlm", mlm, "--output", tmp_path / "a" / "aug.tsv", "--n_aug", 10)
    again = augment("--task", "SST-2", "--input", src, "--mlm", mlm, "--output", tmp_path / "b.tsv", "--n_aug", 10,
                    "--batch_size", 3)
    text = (tmp_path / "a" / "aug.tsv").read_text()
    assert text == (tmp_path / "b.tsv").read_text()  # same seed: same file, whatever the MLM batch size
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["aug.tsv", "aug.tsv.json"]  # no temp file left behind
    lines = text.splitlines()
    assert lines[0] == "sentence\tlabel" and len(lines) > 1 + 30 * 8
    replaced = total = 0
    for line in lines[1:]:
        sentence, label = line.split("\t")
        original, original_label = source[sentence.split(" ")[0]].split("\t")
        assert label == original_label and sentence != original
        new, old = words_of(sentence), words_of(original)
        assert len(new) == len(old)
        for (_, _, w_new), (_, _, w_old) in zip(new, old):
            if eligible(w_old):
                total += 1
                replaced += w_new != w_old
            else:
                assert w_new == w_old  # stop words, digits and punctuation are never touched
    assert 0.33 < replaced / total < 0.5  # p_t = 0.4 (copies equal to the original are dropped: slightly above)
    assert "the" in STOP_WORDS
    from dataset.glue_tsv import read_glue_tsv
    assert len(read_glue_tsv(out, "SST-2")) == len(lines) - 1  # the project's reader takes it as a training file
    augment("--task", "SST-2", "--input", src, "--mlm", mlm, "--output", tmp_path / "c.tsv", "--n_aug", 10, "--seed", 7)
    assert (tmp_path / "c.tsv").read_text() != text


def test_augment_candidates_by_hand(mlm):
    """MLM candidates: the top-K whole content words of a plain full forward; multi-piece words in the input
    space: cosine neighbours of the mean piece embedding. Stop words ('the', 'was', 'and', 'very', 'a') are
    never proposed."""
    from transformers import AutoTokenizer, BertForMaskedLM
    from tools.augment import STOP_WORDS, Candidates
    source = Candidates(str(mlm), top_k=3, space="input")
    text = "the plot was good"
    got = source.masked([(text, 13, 16, "was"), (text, 4, 8, "plot")])
    model, tok = BertForMaskedLM.from_pretrained(mlm).eval(), AutoTokenizer.from_pretrained(mlm)
    vocab = tok.get_vocab()
    whole = [i for w, i in vocab.items() if w.isalpha() and len(w) > 1 and not w.startswith("[") and w not in STOP_WORDS]
    assert len(whole) == len(POS) + len(NEG) + len(FILLER) - 5
    for (start, end, word), cands in zip([(13, 16, "was"), (4, 8, "plot")], got):
        enc = tok(text[:start] + "[MASK]" + text[end:], return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0, (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]]
        ranked = sorted((i for i in whole if i != vocab[word]), key=lambda i: -logits[i].item())[:3]
        assert cands == tok.convert_ids_to_tokens(ranked)
    table = model.get_input_embeddings().weight.detach()
    query = (table[vocab["film"]] + table[vocab["##s"]]) / 2
    ranked = sorted(whole, key=lambda i: -F.cosine_similarity(query, table[i], dim=0).item())[:3]
    assert source.neighbours(["films"])["films"] == tok.convert_ids_to_tokens(ranked)


def test_augment_encoder_space_neighbours_by_hand(mlm):
    """--space encoder: a word's vector is the mean of the encoder's last-layer states over its pieces, the word
    encoded alone as [CLS] pieces [SEP]; neighbours are the whole content words nearest by cosine, the word
    itself left out. With --single_piece neighbours a one-piece word gets neighbours too, not MLM predictions."""
    from transformers import AutoTokenizer, BertForMaskedLM
    from tools.augment import STOP_WORDS, Candidates, tinybert_candidates
    bert, tok = BertForMaskedLM.from_pretrained(mlm).eval().bert, AutoTokenizer.from_pretrained(mlm)
    vocab = tok.get_vocab()
    whole = [w for w in vocab if w.isalpha() and len(w) > 1 and not w.startswith("[") and w not in STOP_WORDS]

    def vector(pieces):
        ids = torch.tensor([[vocab["[CLS]"]] + [vocab[p] for p in pieces] + [vocab["[SEP]"]]])
        with torch.no_grad():
            return bert(input_ids=ids).last_hidden_state[0, 1:-1].mean(0)

    source = Candidates(str(mlm), top_k=4, single_piece="neighbours")
    for word, pieces in (("films", ["film", "##s"]), ("dull", ["dull"])):
        query = vector(pieces)
        ranked = sorted(whole, key=lambda w: -F.cosine_similarity(query, vector([w]), dim=0).item())
        expected = [w for w in ranked if w != word][:4]
        assert source.neighbours([word])[word] == expected
    found = tinybert_candidates(["the plot was dull"], source, tok.unk_token)
    assert found == [{1: source.neighbours(["plot"])["plot"], 3: source.neighbours(["dull"])["dull"]}]
    input_space = Candidates(str(mlm), top_k=4, space="input")
    assert input_space.neighbours(["films"])["films"] != source.neighbours(["films"])["films"]


def test_augment_batches_keep_a_texts_masked_variants_together(mlm):
    from tools.augment import Candidates
    a, b, c, d = "a" * 3, "b" * 3, "c" * 3, "d" * 3  # distinct objects, as the tool's texts are
    requests = [(a, 0, 1, "x")] * 3 + [(b, 0, 1, "x")] * 4 + [(c, 0, 1, "x")] * 2 + [(d, 0, 1, "x")] * 7
    sizes = [[r[0] for r in chunk] for chunk in Candidates(str(mlm), batch_size=5).batches(requests)]
    assert sizes == [[a] * 3, [b] * 4, [c] * 2, [d] * 5, [d] * 2]


def test_augment_pair_task_changes_one_text_per_copy(tmp_path, mlm):
    rows = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\tthe movie was good\tthe plot was dull\t"
                                                      f"{['entailment', 'not_entailment'][i % 2]}" for i in range(4)]
    (tmp_path / "rte.tsv").write_text("\n".join(rows) + "\n")
    augment("--task", "RTE", "--input", tmp_path / "rte.tsv", "--mlm", mlm, "--output", tmp_path / "o.tsv", "--p_t", 1.0)
    lines = (tmp_path / "o.tsv").read_text().splitlines()
    assert lines[0] == rows[0]
    changed = set()
    for line in lines[1:]:
        index, a, b, label = line.split("\t")
        assert label == ["entailment", "not_entailment"][int(index) % 2]
        assert (a == "the movie was good") != (b == "the plot was dull")  # exactly one text changed
        changed.add("a" if b == "the plot was dull" else "b")
        assert "the" in (a + b) and "was" in a and "was" in b  # stop words kept
    assert changed == {"a", "b"}
    augment("--task", "RTE", "--input", tmp_path / "rte.tsv", "--mlm", mlm, "--output", tmp_path / "a.tsv",
            "--p_t", 1.0, "--columns", "a", "--max_examples", 2)
    only_a = (tmp_path / "a.tsv").read_text().splitlines()[1:]
    assert only_a and all(l.split("\t")[2] == "the plot was dull" and int(l.split("\t")[0]) < 2 for l in only_a)


def test_augment_tang_method(tmp_path):
    pytest.importorskip("tools.augment_tang")
    src = sst_rows(tmp_path, n=5)
    augment("--task", "SST-2", "--input", src, "--method", "tang", "--output", tmp_path / "t.tsv", "--n_aug", 4)
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    labels = {l.split(" ")[0]: l.split("\t")[1] for l in src.read_text().splitlines()[1:]}
    assert lines[0] == "sentence\tlabel" and len(lines) > 1
    assert all(l.split("\t")[1] in ("0", "1") and len(l.split("\t")) == 2 for l in lines[1:])
    assert all(labels[l.split(" ")[0]] == l.split("\t")[1] for l in lines[1:] if l.split(" ")[0] in labels)


def test_augment_bad_input_is_one_line_exit_2(tmp_path, mlm):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "augment.py"), "--task", "SST-2", "--input", str(bad),
                           "--mlm", str(mlm), "--output", str(tmp_path / "o.tsv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {bad}:3: expected 2 columns, got 3"
    assert not (tmp_path / "o.tsv").exists()
    with pytest.raises(DataError, match=r"missing.tsv: file not found"):
        augment("--task", "SST-2", "--input", tmp_path / "missing.tsv", "--mlm", mlm)
    with pytest.raises(ConfigError) as err:
        augment("--task", "SST-2", "--input", bad)
    assert str(err.value) == ("--mlm: required for --method tinybert "
                              "(an HF *ForMaskedLM checkpoint, e.g. runs/general/mlm_head)")
    with pytest.raises(ConfigError, match=r"^--p_t 1.5: must be a probability in \[0, 1\]$"):
        augment("--task", "SST-2", "--input", bad, "--mlm", mlm, "--p_t", 1.5)
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\tgood film\n")
    with pytest.raises(DataError) as err:
        augment("--task", "SST-2", "--input", tmp_path / "test.tsv", "--mlm", mlm)
    assert str(err.value) == f"{tmp_path / 'test.tsv'}: no 'label' column; augment a labelled training file"
