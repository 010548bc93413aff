"""DC-BERT as the paper (Zhang et al. 2020) and the XiaoIce framework's models/dc_bert.py define it: two separate
encoders, K new interaction layers over the concatenated states checked against the formula written out by hand,
the plain cross-entropy loss, the cached-document path, the FLOPs split, the export, one-line config errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from process.distributed import DistInfo
from tests.match_helpers import LD, LQ, match_config_text
from utils.errors import ConfigError


def build(tmp_path, teacher, data, pretrained=None, **sections):
    """A dc_bert run whose source is the teacher ([student] init_from = teacher unless told otherwise)."""
    from process.init_process import init_all
    sections.setdefault("student", {}).setdefault("init_from", "teacher")
    (tmp_path / "d.config").write_text(match_config_text(pretrained or teacher, data, "dc_bert", teacher, **sections))
    return init_all(load_config(tmp_path / "d.config"), DistInfo(), "train")


def towers(batch):
    return ({"input_ids": batch["a_input_ids"], "attention_mask": batch["a_attention_mask"]},
            {"input_ids": batch["b_input_ids"], "attention_mask": batch["b_attention_mask"]})


def test_question_and_document_encoders_are_separate(tmp_path, teacher3, pair_data):
    run = build(tmp_path, teacher3, pair_data)
    model = run.model
    assert model.teacher is None  # the teacher was read for weights only: not kept
    q_params = {p.data_ptr() for p in model.student.parameters()}
    assert not q_params & {p.data_ptr() for p in model.document_encoder.parameters()}
    assert len(model.student.encoder.layer) == len(model.document_encoder.encoder.layer) == 3  # full depth
    from transformers import BertForSequenceClassification
    t = BertForSequenceClassification.from_pretrained(teacher3)
    for encoder in (model.student, model.document_encoder):  # both start as copies of the teacher
        for name, value in encoder.state_dict().items():
            assert torch.equal(value, t.bert.state_dict()[name]), name
    batch = next(iter(run.loaders["train"]))
    a_in, b_in = towers(batch)
    doc_before = {k: v.clone() for k, v in model.document_encoder.state_dict().items()}
    q_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model.encode_question(a_in).square().mean().backward()  # a question-only loss
    assert all(p.grad is None for p in model.document_encoder.parameters())
    optimizer.step()
    assert all(torch.equal(v, model.document_encoder.state_dict()[k]) for k, v in doc_before.items())
    assert not all(torch.equal(v, model.student.state_dict()[k]) for k, v in q_before.items())
    model.eval()
    with torch.no_grad():  # the document side no longer equals the question side on the same text
        assert not torch.allclose(model.encode_question(b_in), model.encode_docs(b_in)["states"])


def bert_layer_by_hand(x, mask, layer, heads, eps):
    """One post-LN BERT layer from its weights: multi-head self-attention over valid keys, residual + LayerNorm,
    GELU feed-forward, residual + LayerNorm."""
    b, length, width = x.shape
    d = width // heads
    att = layer.attention.self
    split = lambda t: t.view(b, length, heads, d).transpose(1, 2)
    q, k, v = (split(F.linear(x, m.weight, m.bias)) for m in (att.query, att.key, att.value))
    scores = (q @ k.transpose(-1, -2) / math.sqrt(d)).masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, width)
    out = layer.attention.output
    h = F.layer_norm(F.linear(context, out.dense.weight, out.dense.bias) + x, (width,), out.LayerNorm.weight,
                     out.LayerNorm.bias, eps)
    inner = F.gelu(F.linear(h, layer.intermediate.dense.weight, layer.intermediate.dense.bias))
    final = layer.output
    return F.layer_norm(F.linear(inner, final.dense.weight, final.dense.bias) + h, (width,), final.LayerNorm.weight,
                        final.LayerNorm.bias, eps)


@pytest.mark.parametrize("classifier_input, norm", [("cls_pair", "true"), ("cls", "true"), ("cls_pair", "false")])
def test_interaction_and_classifier_follow_the_formula(tmp_path, teacher3, pair_data, classifier_input, norm):
    """K = 2 layers copied from teacher layer L = 1 and the one below it (0): concatenate the towers' final states,
    add global positions 0..m+n-1 and types (0 question, 1 document) from the teacher's tables, LayerNorm with the
    teacher's embedding LayerNorm (embedding_layer_norm = true), teacher layers 0 then 1, then the classifier on
    [CLS] (position 0) or tanh(pooler([h_0 ; h_m]))."""
    run = build(tmp_path, teacher3, pair_data, dc_bert={"num_interaction_layers": 2, "copy_from_bert_layer_num": 1,
                                                        "classifier_input": classifier_input, "embedding_layer_norm": norm})
    model = run.model.eval()
    from transformers import BertForSequenceClassification
    t = BertForSequenceClassification.from_pretrained(teacher3).eval()
    cfg, emb = t.config, t.bert.embeddings
    torch.manual_seed(3)
    m, n, width = LQ, LD, cfg.hidden_size
    a_states, b_states = torch.randn(2, m, width), torch.randn(2, n, width)
    a_mask, b_mask = torch.ones(2, m, dtype=torch.long), torch.ones(2, n, dtype=torch.long)
    a_mask[0, 3:-1], b_mask[1, 5:-1] = 0, 0  # padding before the final [SEP], as the bipartition layout
    with torch.no_grad():
        for head in ("pooler", "classifier"):  # new layers (std 0.02): made O(1) so that small differences show
            if hasattr(model, head):
                getattr(model, head).weight.normal_()
                getattr(model, head).bias.normal_()
        x = torch.cat([a_states, b_states], 1)
        x = x + emb.position_embeddings.weight[:m + n][None]
        x = x + torch.cat([emb.token_type_embeddings.weight[0].expand(m, -1), emb.token_type_embeddings.weight[1].expand(n, -1)])
        if norm == "true":
            x = F.layer_norm(x, (width,), emb.LayerNorm.weight, emb.LayerNorm.bias, cfg.layer_norm_eps)
        mask = torch.cat([a_mask, b_mask], 1)
        for layer in (t.bert.encoder.layer[0], t.bert.encoder.layer[1]):
            x = bert_layer_by_hand(x, mask, layer, cfg.num_attention_heads, cfg.layer_norm_eps)
        if classifier_input == "cls":
            pooled = x[:, 0]
        else:
            pooled = torch.tanh(F.linear(torch.cat([x[:, 0], x[:, m]], -1), model.pooler.weight, model.pooler.bias))
        expected = F.linear(pooled, model.classifier.weight, model.classifier.bias)
        hidden = model.interact(a_states, a_mask, b_states, b_mask)
        got = model.head(a_states, a_mask, {"states": b_states, "mask": b_mask})
    assert torch.allclose(hidden, x, atol=1e-5)
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)
    assert (classifier_input == "cls_pair") == hasattr(model, "pooler")


def test_loss_without_distillation_is_plain_cross_entropy(tmp_path, teacher3, pair_data):
    """The paper's objective; [distill] teacher is given but, with init_from = pretrained, never read (a missing
    path would fail if it were)."""
    from process.init_process import init_all
    (tmp_path / "d.config").write_text(match_config_text(teacher3, pair_data, "dc_bert", tmp_path / "no_such_teacher",
                                                         distill={"soft_weight": 0.7, "hard_weight": 0.3}))
    run = init_all(load_config(tmp_path / "d.config"), DistInfo(), "train")
    model = run.model.train()
    assert model.teacher is None and not model.teacher_runs_in_train_step
    batch = next(iter(run.loaders["train"]))
    torch.manual_seed(0)
    out = model(batch)
    assert set(out) == {"logits", "loss", "loss_hard"}
    by_hand = -F.log_softmax(out["logits"].detach(), -1).gather(1, batch["labels"][:, None]).mean()
    assert out["loss"].item() == pytest.approx(by_hand.item(), rel=1e-6)  # not 0.3 * CE: the KD weights are unused


@pytest.mark.parametrize("kind", ["transformer", "linear"])
def test_cached_documents_give_the_direct_logits(tmp_path, teacher3, pair_data, kind):
    run = build(tmp_path, teacher3, pair_data, dc_bert={"last_layer_model_type": kind, "num_interaction_layers": 2})
    model = run.model.eval()
    batch = next(iter(run.loaders["train"]))
    a_in, b_in = towers(batch)
    with torch.no_grad():
        model.student.encoder.layer[0].output.dense.weight.mul_(1.5)  # the two encoders differ, as after training
        direct = model(batch)["logits"]
        docs = model.encode_docs(b_in)
        cached = model.score(a_in, {k: v.clone() for k, v in docs.items()})
        other_question = model.score({k: v.roll(1, 0) for k, v in a_in.items()}, docs)
    assert torch.allclose(direct, cached, atol=1e-6)
    assert not torch.allclose(direct, other_question)
    assert set(docs) == ({"states", "mask"} if kind == "transformer" else {"cls"})


def test_flops_split_by_hand_and_measured(tmp_path, teacher3, pair_data):
    """offline = the document encoder; online = the question encoder + K interaction layers + pooler + classifier."""
    from efficiency.flops import encoder_layer_flops
    from tools.flops import report
    run = build(tmp_path, teacher3, pair_data, dc_bert={"num_interaction_layers": 2})
    model = run.model.eval()
    h, inner = 32, 64  # tests/helpers.py: hidden 32, intermediate 2 * hidden
    layer = lambda length: encoder_layer_flops(length, h, inner)
    assert model.analytic_flops() == {"offline": 3 * layer(LD),
                                      "online": 3 * layer(LQ) + 2 * layer(LQ + LD) + 2 * 2 * h * h + 2 * h * 2}
    rep = report(model, repeats=0)
    assert rep["measured"] == rep["analytic"]


def test_export_writes_both_encoders_and_the_online_head(tmp_path, teacher3, pair_data):
    import json
    from safetensors.torch import load_file
    from transformers import AutoModel
    run = build(tmp_path, teacher3, pair_data)
    model = run.model
    with torch.no_grad():
        model.document_encoder.encoder.layer[2].output.dense.bias.add_(1.0)
    model.export(tmp_path / "out", run.tokenizer)
    question, document = AutoModel.from_pretrained(tmp_path / "out"), AutoModel.from_pretrained(tmp_path / "out" / "document_encoder")
    for exported, ours in ((question, model.student), (document, model.document_encoder)):
        state = exported.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in ours.state_dict().items())
    head = load_file(str(tmp_path / "out" / "match_head.safetensors"))
    assert not [k for k in head if k.startswith("document_encoder.")]
    assert {"interaction.0.attention.self.query.weight", "position.weight", "segment.weight", "norm.weight",
            "pooler.weight", "classifier.weight"} <= set(head)
    info = json.loads((tmp_path / "out" / "match_head.json").read_text())
    assert info["document_encoder"] == "document_encoder" and info["interaction_copied_from_layers"] == [2]


def test_bad_interaction_layer_is_one_line_error(tmp_path, teacher3, pair_data):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, teacher3, pair_data, dc_bert={"copy_from_bert_layer_num": 5})
    line = (tmp_path / "d.config").read_text().splitlines().index("copy_from_bert_layer_num = 5") + 1
    assert str(err.value) == (f"{tmp_path / 'd.config'}:{line}: [dc_bert] copy_from_bert_layer_num = 5: "
                              "[distill] teacher has layers 0..2 (-1 = the last)")
    assert "\n" not in str(err.value)


def test_bad_classifier_input_is_refused_at_load(tmp_path, teacher3, pair_data):
    (tmp_path / "d.config").write_text(match_config_text(teacher3, pair_data, "dc_bert", teacher3,
                                                         dc_bert={"classifier_input": "mean"}))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "d.config")
    line = (tmp_path / "d.config").read_text().splitlines().index("classifier_input = mean") + 1
    assert str(err.value) == f"{tmp_path / 'd.config'}:{line}: [dc_bert] classifier_input = 'mean': expected one of cls_pair, cls"


def test_random_init_is_one_line_error(tmp_path, teacher3, pair_data):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, teacher3, pair_data, student={"init_from": "config"})
    line = (tmp_path / "d.config").read_text().splitlines().index("init_from = config") + 1
    assert str(err.value) == (f"{tmp_path / 'd.config'}:{line}: [student] init_from = config: dc_bert copies its "
                              "encoders and interaction layers from a trained model; use teacher or pretrained")
