"""An MPNet teacher (all-mpnet-base-v2's family: no token types, pad id 1, a relative position bias added to every
layer's attention scores, q/k/v named attention.attn.q/k/v, a classification head without pooler) for each GLUE
method, on tiny random MPNets built here, each student cut from the teacher's own layers: KD's loss by hand, PKD's
patience by hand, TinyBERT's scores as the model softmaxes them (bias included), Theseus' hybrid at p = 1 and 0,
DistilBERT's cosine by hand, MiniLMv2's relations from the q/k/v weights by hand; every method then takes an
optimizer step that moves the student."""
import math
import random

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from model.parts.features import encoder_layers
from model.parts.loss import attention_mse_loss, relation_kl_loss
from process.distributed import DistInfo
from process.init_process import init_all
from tests.helpers import FILLER, NEG, POS, tiny_config_text
from utils.errors import ConfigError

VOCAB = ["<s>", "<pad>", "</s>", "[UNK]"] + POS + NEG + FILLER + ["<mask>"]  # MPNet's special ids: pad = 1
INPUTS = ("input_ids", "attention_mask")


def write_tiny_mpnet(path, kind="classifier", layers=4, hidden=32, heads=2, seed=0):
    """A random MPNet (ForSequenceClassification / ForMaskedLM / the bare encoder), dropout 0, and the MPNet
    tokenizer over the tests' words. initializer_range 0.2 (not 0.02) so that layers, logits and the relative
    position bias differ by more than rounding."""
    from transformers import (MPNetConfig, MPNetForMaskedLM, MPNetForSequenceClassification, MPNetModel,
                              MPNetTokenizer)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = MPNetConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=2 * hidden, max_position_embeddings=66, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, initializer_range=0.2, num_labels=2, pad_token_id=1)
    cls = {"classifier": MPNetForSequenceClassification, "mlm": MPNetForMaskedLM, "encoder": MPNetModel}[kind]
    cls(config).save_pretrained(path)
    MPNetTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return write_tiny_mpnet(tmp_path_factory.mktemp("mpnet_classifier"))


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
    path, rng = tmp_path_factory.mktemp("mpnet_text"), random.Random(0)
    (path / "train.txt").write_text("\n".join(" ".join(rng.choices(FILLER + POS + NEG, k=rng.randint(3, 9)))
                                              for _ in range(16)) + "\n")
    return path


def build(tmp_path, text):
    (tmp_path / "t.config").write_text(text)
    return init_all(load_config(tmp_path / "t.config"), DistInfo(), "train")


def task_run(tmp_path, teacher, data_dir, method, **sections):
    """A labeled task run (tests/helpers.py's layout) whose student is cut from the teacher's first layers."""
    sections.setdefault("student", {"init_from": "teacher", "num_layers": 2, "layer_select": "first"})
    sections["distill"] = dict(sections.get("distill", {}), teacher=str(teacher))
    return build(tmp_path, tiny_config_text(teacher, data_dir, method, **sections))


def general_run(tmp_path, teacher, data, method, formatter="hf_tokenizer", **sections):
    """Unlabeled text: the general-distillation layout (text_lines, no validation split)."""
    base = {"data": {"root": str(data), "train_file": "train.txt", "valid_file": "", "max_seq_length": 16,
                     "train_dataset_type": "text_lines", "formatter_type": formatter},
            "model": {"model_name": method, "pretrained": str(teacher)},
            "student": {"init_from": "teacher", "num_layers": 2, "layer_select": "first"},
            "distill": {"teacher": str(teacher)}, "mlm": {"mask_prob": 0.3},
            "train": {"epoch": 1, "batch_size": 8, "learning_rate": 1e-2, "logging_steps": 1},
            "eval": {"batch_size": 8, "latency_batches": 0}, "output": {"tensorboard": "false"}}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return build(tmp_path, "\n".join(f"[{s}]\n" + "\n".join(f"{k} = {v}" for k, v in kv.items())
                                     for s, kv in base.items()) + "\n")


def mpnet_batch(run):
    """The first training batch, checked to be MPNet's own: no token types, padded with id 1."""
    batch = next(iter(run.loaders["train"]))
    assert "token_type_ids" not in batch
    assert (batch["attention_mask"] == 0).any() and (batch["input_ids"][batch["attention_mask"] == 0] == 1).all()
    return batch, {k: batch[k] for k in INPUTS}


def step_moves_the_student(run, out, names=None):
    """One optimizer step on a finite loss; the student's parameters (or those named) change, the teacher's not."""
    student = run.model.student_model()
    params = dict(student.named_parameters())
    watched = names or [n for n, p in params.items() if p.requires_grad]
    before = {n: params[n].detach().clone() for n in watched}
    teacher_before = [p.detach().clone() for p in run.model.teacher.parameters()]
    assert torch.isfinite(out["loss"]) and out["loss"].item() > 0
    run.optimizer.zero_grad()
    out["loss"].backward()
    run.optimizer.step()
    assert all(not torch.equal(params[n], before[n]) for n in watched), [n for n in watched
                                                                           if torch.equal(params[n], before[n])]
    assert all(torch.equal(a, b) for a, b in zip(run.model.teacher.parameters(), teacher_before))


def check_cut_from_teacher(student, teacher, kept, prefix="mpnet"):
    """The student is the teacher's own architecture with the teacher's layers `kept`, everything else copied."""
    assert type(student) is type(teacher) and student.config.num_hidden_layers == len(kept)
    s_state, t_state = student.state_dict(), teacher.state_dict()
    prefix = prefix + "." if prefix else ""
    for new, old in enumerate(kept):
        layer = f"{prefix}encoder.layer.{new}."
        assert all(torch.equal(v, t_state[k.replace(layer, f"{prefix}encoder.layer.{old}.")])
                   for k, v in s_state.items() if k.startswith(layer))
    # the relative position bias table, embeddings and head
    assert all(torch.equal(v, t_state[k]) for k, v in s_state.items() if ".layer." not in k)


def test_kd_loss_is_the_hand_computed_one_from_the_teachers_logits(tmp_path, classifier, tiny_data):
    run = task_run(tmp_path, classifier, tiny_data, "kd", distill={"temperature": 2.0, "soft_weight": 1.0,
                                                                 "hard_weight": 0.5})
    model = run.model.train()
    check_cut_from_teacher(model.student, model.teacher, [0, 1])
    batch, inputs = mpnet_batch(run)
    out = model(batch)
    with torch.no_grad():
        t, s = model.teacher(**inputs).logits, model.student(**inputs).logits
    p_t, log_p_t, log_p_s = (t / 2).softmax(-1), (t / 2).log_softmax(-1), (s / 2).log_softmax(-1)
    kd = (p_t * (log_p_t - log_p_s)).sum(-1).mean() * 4
    ce = F.cross_entropy(s, batch["labels"])
    assert kd.item() > 1e-3  # teacher and 2-layer student disagree: the check below means something
    assert out["loss_kd"].item() == pytest.approx(kd.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((kd + 0.5 * ce).item(), rel=1e-5)
    step_moves_the_student(run, out)


def test_pkd_patience_is_the_hand_computed_one_from_the_cls_states(tmp_path, classifier, tiny_data):
    run = task_run(tmp_path, classifier, tiny_data, "pkd", student={"init_from": "teacher", "num_layers": 2},
                   pkd={"strategy": "skip", "beta": 10.0})
    model = run.model.train()
    check_cut_from_teacher(model.student, model.teacher, [1, 3])  # layer_select's default, uniform
    assert model.pairs == [(0, 1)]  # student layer 0 <- teacher layer 1 (PKD-Skip, 4 -> 2)
    batch, inputs = mpnet_batch(run)
    out = model(batch)
    with torch.no_grad():
        s = model.student(**inputs, output_hidden_states=True).hidden_states
        t = model.teacher(**inputs, output_hidden_states=True).hidden_states
    expected = F.mse_loss(F.normalize(s[1][:, 0], dim=-1), F.normalize(t[2][:, 0], dim=-1))
    assert expected.item() > 1e-4 and out["loss_pt"].item() == pytest.approx(expected.item(), rel=1e-5)
    step_moves_the_student(run, out)


def manual_scores(model, layer_index, hidden_in, heads):
    """q k^T / sqrt(d) + MPNet's relative position bias, from the layer's own weights and the encoder's bias table."""
    attention = encoder_layers(model)[layer_index].attention.attn
    q = hidden_in @ attention.q.weight.T + attention.q.bias
    k = hidden_in @ attention.k.weight.T + attention.k.bias
    b, length, width = q.shape
    q = q.view(b, length, heads, width // heads).transpose(1, 2)
    k = k.view(b, length, heads, width // heads).transpose(1, 2)
    bias = model.base_model.encoder.compute_position_bias(hidden_in)
    return q @ k.transpose(-1, -2) / math.sqrt(width // heads) + bias


@pytest.mark.parametrize("stage", ["intermediate", "general"])
def test_tinybert_matches_the_scores_mpnet_softmaxes_position_bias_included(tmp_path, classifier, tiny_data, text_data,
                                                                           stage):
    weights = {"embedding_weight": 1.0, "hidden_weight": 1.0, "attention_weight": 1.0}
    if stage == "intermediate":
        run = task_run(tmp_path, classifier, tiny_data, "tinybert", data={"valid_file": ""},
                       tinybert=dict(weights, stage="intermediate"))
    else:
        encoder = write_tiny_mpnet(tmp_path / "encoder", kind="encoder")
        run = general_run(tmp_path, encoder, text_data, "tinybert", tinybert=dict(weights, stage="general"))
    model = run.model.train()
    assert model.layer_map == [1, 3]
    batch, inputs = mpnet_batch(run)
    _, t_scores = model.run_teacher_features(batch, [1, 3])
    with torch.no_grad():  # the captured teacher scores are what MPNet softmaxes: its attention probabilities
        t_out = model.teacher(**inputs, output_hidden_states=True, output_attentions=True)
        s_out = model.student(**inputs, output_hidden_states=True)
    keys = batch["attention_mask"][:, None, None, :] == 0
    for got, layer in zip(t_scores, [1, 3]):
        assert torch.allclose(got.masked_fill(keys, float("-inf")).softmax(-1), t_out.attentions[layer], atol=1e-6)
    with torch.no_grad():
        s_maps = [manual_scores(model.student, s, s_out.hidden_states[s], 2) for s in range(2)]
        t_maps = [manual_scores(model.teacher, t, t_out.hidden_states[t], 2) for t in (1, 3)]
        t_bias = model.teacher.base_model.encoder.compute_position_bias(t_out.hidden_states[0])
    mask = batch["attention_mask"]
    att = sum(attention_mse_loss(s, t, mask) for s, t in zip(s_maps, t_maps))
    no_bias = sum(attention_mse_loss(s, t - t_bias, mask) for s, t in zip(s_maps, t_maps))
    out = model(batch)
    assert abs(no_bias.item() - att.item()) > 1e-3 * att.item()  # leaving the bias out would show
    assert out["loss_att"].item() == pytest.approx(att.item(), rel=1e-5)
    prefix = "mpnet." if stage == "intermediate" else ""  # a classifier's encoder, or the bare encoder
    # a step moves the student's layers and its own bias table (in its scores and its states)
    step_moves_the_student(run, out, [prefix + "encoder.relative_attention_bias.weight",
                                      prefix + "encoder.layer.0.attention.attn.q.weight"])


def theseus_run(tmp_path, teacher, data_dir, rate):
    """Successor = teacher layers 0, 1; p = rate on every step."""
    return task_run(tmp_path, teacher, data_dir, "theseus", student={"init_from": "teacher", "layer_select": "first"},
                    theseus={"compress_ratio": 2, "scheduler_type": "constant", "replacing_rate": rate})


def test_theseus_hybrid_is_the_successor_at_p_one_and_the_teacher_at_p_zero(tmp_path, classifier, tiny_data):
    for rate, reference in ((1.0, "student"), (0.0, "teacher")):
        run = theseus_run(tmp_path, classifier, tiny_data, rate)
        model = run.model.train()  # dropout 0: the drawn hybrid is deterministic
        check_cut_from_teacher(model.student, model.teacher, [0, 1])
        batch, inputs = mpnet_batch(run)
        out = model(batch)
        with torch.no_grad():
            expected = getattr(model, reference)(**inputs).logits
        assert torch.allclose(out["logits"], expected, atol=1e-5), rate
        assert out["loss"].item() == pytest.approx(F.cross_entropy(expected, batch["labels"]).item(), rel=1e-5)
    with torch.no_grad():
        assert not torch.allclose(model.student(**inputs).logits, expected, atol=1e-3)  # the two references differ
    run = theseus_run(tmp_path, classifier, tiny_data, 1.0)
    model = run.model.train()
    frozen = {n: p.detach().clone() for n, p in model.student.named_parameters() if ".encoder.layer." not in n}
    step_moves_the_student(run, model(mpnet_batch(run)[0]))
    assert all(torch.equal(p, frozen[n]) for n, p in model.student.named_parameters() if n in frozen)


def test_theseus_refuses_a_classifier_it_cannot_run_layer_by_layer(tmp_path, tiny_data):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification
    from tests.helpers import make_tokenizer
    path = tmp_path / "distilbert"
    DistilBertForSequenceClassification(DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=2,
                                                         hidden_dim=64)).save_pretrained(path)
    make_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + FILLER).save_pretrained(path)
    with pytest.raises(ConfigError) as err:
        task_run(tmp_path, path, tiny_data, "theseus", student={"init_from": "teacher"})
    assert str(err.value) == ("[distill] teacher: theseus runs the teacher's layers one by one, which it can for "
                              "BertForSequenceClassification and MPNetForSequenceClassification; "
                              f"{path} is a DistilBertForSequenceClassification")


def test_distilbert_with_an_mpnet_masked_lm_teacher(tmp_path, text_data):
    teacher = write_tiny_mpnet(tmp_path / "mlm", kind="mlm")
    run = general_run(tmp_path, teacher, text_data, "distilbert", formatter="mlm",
                      distilbert={"alpha_ce": 1.0, "alpha_mlm": 1.0, "alpha_cos": 1.0})
    model = run.model.train()
    check_cut_from_teacher(model.student, model.teacher, [0, 1])
    batch = next(iter(run.loaders["train"]))
    assert "token_type_ids" not in batch and (batch["input_ids"] == len(VOCAB) - 1).any()  # <mask> is the last id
    inputs = {k: batch[k] for k in INPUTS}
    out = model(batch)
    with torch.no_grad():
        s = model.student.mpnet(**inputs).last_hidden_state
        t = model.teacher.mpnet(**inputs).last_hidden_state
    mask = batch["attention_mask"].bool()
    cos = 1 - F.cosine_similarity(s[mask], t[mask], dim=-1).mean()
    assert cos.item() > 1e-3 and out["loss_cos"].item() == pytest.approx(cos.item(), rel=1e-5)
    assert all(torch.isfinite(out[k]) for k in ("loss_ce", "loss_mlm", "loss_cos"))
    step_moves_the_student(run, out, ["mpnet.encoder.layer.0.attention.attn.q.weight", "lm_head.dense.weight"])


def test_minilmv2_relations_come_from_mpnets_q_k_v(tmp_path, text_data):
    teacher = write_tiny_mpnet(tmp_path / "encoder", kind="encoder")
    run = general_run(tmp_path, teacher, text_data, "minilmv2",
                      minilmv2={"num_relation_heads": 4, "teacher_layer_index": -1, "student_layer_index": -1})
    model = run.model.train()
    check_cut_from_teacher(model.student, model.teacher, [0, 1], prefix="")
    batch, inputs = mpnet_batch(run)
    out = model(batch)
    with torch.no_grad():
        s_in = model.student(**inputs, output_hidden_states=True).hidden_states[1]  # the input of student layer 1
        t_in = model.teacher(**inputs, output_hidden_states=True).hidden_states[3]  # the input of teacher layer 3
    s_att, t_att = encoder_layers(model.student)[1].attention.attn, encoder_layers(model.teacher)[3].attention.attn
    for part, name in (("q", "loss_qq"), ("k", "loss_kk"), ("v", "loss_vv")):
        s_x = s_in @ getattr(s_att, part).weight.T + getattr(s_att, part).bias
        t_x = t_in @ getattr(t_att, part).weight.T + getattr(t_att, part).bias
        expected = relation_kl_loss(s_x, t_x, 4, batch["attention_mask"])
        assert expected.item() > 1e-4 and out[name].item() == pytest.approx(expected.item(), rel=1e-5), part
    step_moves_the_student(run, out, [f"encoder.layer.1.attention.attn.{x}.weight" for x in "qkv"])


def test_the_cls_only_last_layer_leaves_an_mpnet_classifier_unchanged(classifier):
    """efficiency/cls_only.py knows BERT-shaped layers only: MPNet's last layer runs in full, its logits exact."""
    from efficiency.cls_only import cls_only_last_layer, supports_cls_only
    from pretrained.loading import load_classifier, load_tokenizer
    model = load_classifier(str(classifier), "test").eval()
    batch = load_tokenizer(str(classifier))(["good film", "the plot was really dull"], padding=True,
                                            return_tensors="pt")
    assert not supports_cls_only(model)
    with torch.no_grad():
        full = model(**batch).logits
        with cls_only_last_layer(model):
            assert torch.equal(model(**batch).logits, full)


def test_efficiency_report_says_cls_only_only_where_it_ran(classifier, tmp_path):
    """MPNet's last layer is not BERT-shaped, so cls_only leaves it whole: the report must not claim otherwise,
    while a BERT classifier under the same setting does run it for [CLS] only."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification
    from efficiency.perf import efficiency_report
    mpnet = AutoModelForSequenceClassification.from_pretrained(classifier)
    bert = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64))
    kwargs = dict(mean_length=8, examples_per_s=10.0, flops_factor=1, teacher_in_step=False, cls_only=True)
    assert efficiency_report(mpnet, None, **kwargs)["cls_only_last_layer"] is False
    assert efficiency_report(bert, None, **kwargs)["cls_only_last_layer"] is True
    assert efficiency_report(bert, None, **{**kwargs, "cls_only": False})["cls_only_last_layer"] is False
