"""VIRT against the authors' released code (sbert_distill.py of github.com/lidan528/VIRT), each expected value
written out here with plain torch ops from their formulas, never by calling ours:
- get_attention_loss: [CLS] and the last [SEP] of both towers dropped (q[:, :, 1:-1], k[:, :, 1:-1]; teacher
  scores [1:Lq-1, Lq:-1]), -10000 added at the other text's padding, tf.losses.mean_squared_error over the full
  padded maps (padded rows and columns in the mean), x->y plus y->x per layer, divided by the number of layers;
- newly_late_interaction: unmasked means of the cross-attended states, [e1, e2, |e1-e2|, max(e1,e2)^2];
- get_prediction_student_use_resnet: logits = W2 (W1 x + b1 + x) + b2 (eval: no dropout);
- the logit terms: MSE, else KL; both on is a config error here."""
import math

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from model.parts.loss import virtual_attention_loss
from model.parts.match_common import teacher_cross_maps
from model.virt import Predictor, late_interaction, virtual_attention
from process.distributed import DistInfo
from tests.match_helpers import LQ, match_config_text
from utils.errors import ConfigError

NEG = -10000.0


def tower_mask(lengths, length):
    """[CLS] tokens [PAD]... [SEP] masks (B, length) for the given token counts."""
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :1 + n] = 1
        mask[row, -1] = 1
    return mask


def split_heads(x, heads):
    b, length, width = x.shape
    return x.view(b, length, heads, width // heads).permute(0, 2, 1, 3)


def authors_direction(q_rows, k_cols, col_mask, heads):
    """One direction of their get_attention_loss: q, k already cut to the real tokens; col_mask too."""
    q, k = split_heads(q_rows, heads), split_heads(k_cols, heads)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    adder = (1.0 - col_mask.float())[:, None, None, :] * NEG
    return torch.softmax(scores + adder, dim=-1)


def test_attention_loss_is_the_authors_formula_on_random_padded_tensors():
    torch.manual_seed(0)
    b, lq, ld, hidden, heads, layers = 3, 7, 9, 8, 2, 2
    a_mask, b_mask = tower_mask([5, 2, 3], lq), tower_mask([7, 4, 1], ld)
    t_mask = torch.cat([a_mask, b_mask[:, 1:]], dim=1)  # the teacher's [CLS] a [PAD] [SEP] b [PAD] [SEP]
    expected, s_maps, t_maps = 0.0, [], []
    for _ in range(layers):
        qa, ka, qb, kb = (torch.randn(b, n, hidden) for n in (lq, lq, ld, ld))
        tq, tk = torch.randn(b, lq + ld - 1, hidden), torch.randn(b, lq + ld - 1, hidden)
        # theirs: student rows / columns 1:-1 of each tower; teacher scores [1:Lq-1, Lq:-1] and [Lq:-1, 1:Lq-1]
        s_xy = authors_direction(qa[:, 1:-1], kb[:, 1:-1], b_mask[:, 1:-1], heads)
        s_yx = authors_direction(qb[:, 1:-1], ka[:, 1:-1], a_mask[:, 1:-1], heads)
        t_xy = authors_direction(tq[:, 1:lq - 1], tk[:, lq:-1], b_mask[:, 1:-1], heads)
        t_yx = authors_direction(tq[:, lq:-1], tk[:, 1:lq - 1], a_mask[:, 1:-1], heads)
        assert s_xy.shape == (b, heads, lq - 2, ld - 2) and s_yx.shape == (b, heads, ld - 2, lq - 2)
        # tf.losses.mean_squared_error: the mean over every entry, padded rows and columns included
        expected = expected + ((s_xy - t_xy) ** 2).sum() / s_xy.numel() + ((s_yx - t_yx) ** 2).sum() / s_yx.numel()
        ours_s = (virtual_attention(qa, kb, b_mask, heads), virtual_attention(qb, ka, a_mask, heads))
        ours_t = teacher_cross_maps(tq, tk, t_mask, heads, lq)
        for mine, theirs in zip(ours_s + ours_t, (s_xy, s_yx, t_xy, t_yx)):
            assert torch.allclose(mine, theirs, atol=1e-6)
        s_maps.append(ours_s)
        t_maps.append(ours_t)
    expected = expected / layers
    assert virtual_attention_loss(s_maps, t_maps).item() == pytest.approx(expected.item(), rel=1e-5)
    # the padded entries are in the mean: averaging over valid pairs only gives another number
    valid = (a_mask[:, 1:-1, None] * b_mask[:, None, 1:-1]).bool()[:, None].expand_as(s_maps[0][0])
    valid_only = ((s_maps[0][0] - t_maps[0][0]) ** 2)[valid].mean()
    assert valid_only.item() != pytest.approx(F.mse_loss(s_maps[0][0], t_maps[0][0]).item(), rel=1e-3)


def test_late_interaction_and_residual_predictor_are_the_authors():
    torch.manual_seed(1)
    b, lq, ld, hidden, labels = 2, 6, 8, 4, 3
    a_mask, b_mask = tower_mask([2, 4], lq), tower_mask([6, 1], ld)
    qs, ds = torch.randn(b, lq, hidden), torch.randn(b, ld, hidden)
    # newly_late_interaction, written out
    q2d = torch.matmul(qs, ds.transpose(1, 2)) * (1.0 / math.sqrt(hidden)) + (1.0 - b_mask.float())[:, None, :] * NEG
    e1 = torch.matmul(torch.softmax(q2d, -1), ds).mean(1)  # unmasked: every query row, padded ones included
    d2q = torch.matmul(ds, qs.transpose(1, 2)) * (1.0 / math.sqrt(hidden)) + (1.0 - a_mask.float())[:, None, :] * NEG
    e2 = torch.matmul(torch.softmax(d2q, -1), qs).mean(1)
    features = torch.cat([e1, e2, torch.abs(e1 - e2), torch.square(torch.max(torch.stack([e1, e2]), 0).values)], -1)
    assert torch.allclose(late_interaction(qs, a_mask, ds, b_mask), features, atol=1e-6)
    # get_prediction_student_use_resnet at eval: layer1 = x W1^T + b1 + x; logits = layer1 W2^T + b2
    pred = Predictor(4 * hidden, labels, resnet=True, dropout=0.1, init_range=0.02).eval()
    w1, b1 = torch.randn(4 * hidden, 4 * hidden), torch.randn(4 * hidden)
    w2, b2 = torch.randn(labels, 4 * hidden), torch.randn(labels)
    with torch.no_grad():
        pred.block.weight.copy_(w1), pred.block.bias.copy_(b1), pred.out.weight.copy_(w2), pred.out.bias.copy_(b2)
        layer1 = torch.matmul(features, w1.t()) + b1 + features
        assert torch.allclose(pred(features), torch.matmul(layer1, w2.t()) + b2, atol=1e-5)
    plain = Predictor(4 * hidden, labels, resnet=False, dropout=0.1, init_range=0.02).eval()
    assert not hasattr(plain, "block") and plain.out.weight.shape == (labels, 4 * hidden)
    assert plain.out.weight.abs().max() <= 0.04 and plain.out.bias.abs().max() == 0  # truncated normal(0.02), zero bias


def build(tmp_path, student_model, data, teacher, **virt):
    from process.init_process import init_all
    (tmp_path / "v.config").write_text(match_config_text(student_model, data, "virt", teacher, virt=virt))
    return init_all(load_config(tmp_path / "v.config"), DistInfo(), "train")


def test_model_logits_are_the_late_fusion_of_its_towers(tmp_path, student_model, pair_data):
    run = build(tmp_path, student_model, pair_data, None, model_type="late_fusion", use_kd_att="false",
                use_resnet_predict="true")
    model = run.model.eval()
    batch = next(iter(run.loaders["train"]))
    with torch.no_grad():
        qs = model.student(input_ids=batch["a_input_ids"], attention_mask=batch["a_attention_mask"]).last_hidden_state
        ds = model.student(input_ids=batch["b_input_ids"], attention_mask=batch["b_attention_mask"]).last_hidden_state
        h = qs.shape[-1]
        q2d = qs @ ds.transpose(1, 2) / math.sqrt(h) + (1.0 - batch["b_attention_mask"].float())[:, None, :] * NEG
        d2q = ds @ qs.transpose(1, 2) / math.sqrt(h) + (1.0 - batch["a_attention_mask"].float())[:, None, :] * NEG
        e1, e2 = (torch.softmax(q2d, -1) @ ds).mean(1), (torch.softmax(d2q, -1) @ qs).mean(1)
        x = torch.cat([e1, e2, (e1 - e2).abs(), torch.maximum(e1, e2) ** 2], -1)
        p = model.predictor
        expected = (x @ p.block.weight.t() + p.block.bias + x) @ p.out.weight.t() + p.out.bias
        assert torch.allclose(model(batch)["logits"], expected, atol=1e-5)
    assert sorted(k for k, _ in model.named_parameters() if not k.startswith("student.")) == [
        "predictor.block.bias", "predictor.block.weight", "predictor.out.bias", "predictor.out.weight"]


def test_model_attention_term_is_the_authors_average(tmp_path, student_model, pair_data, teacher):
    """loss_att of a training forward = their get_attention_loss, from independent HF outputs: the teacher's eager
    attention probabilities (sliced to the real tokens, renormalised = their softmax over the sliced scores) and
    the student's own query / key layers applied to its hidden states."""
    run = build(tmp_path, student_model, pair_data, teacher, use_kd_att="true", kd_weight_att=600)
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    out = {k: v.detach() for k, v in model(batch).items()}
    s, t = model.student, model.teacher
    heads = s.config.num_attention_heads
    a_mask, b_mask = batch["a_attention_mask"], batch["b_attention_mask"]
    with torch.no_grad():
        t.config._attn_implementation = "eager"
        t_att = t(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  token_type_ids=batch["token_type_ids"], output_attentions=True).attentions
        t.config._attn_implementation = "sdpa"
        ha = s(input_ids=batch["a_input_ids"], attention_mask=a_mask, output_hidden_states=True).hidden_states
        hb = s(input_ids=batch["b_input_ids"], attention_mask=b_mask, output_hidden_states=True).hidden_states
        total, layers = 0.0, s.config.num_hidden_layers  # 2-layer student <- 2-layer teacher: layer by layer, as theirs
        for layer in range(layers):
            attn = s.encoder.layer[layer].attention.self
            qa, ka, qb, kb = attn.query(ha[layer]), attn.key(ha[layer]), attn.query(hb[layer]), attn.key(hb[layer])
            s_xy = authors_direction(qa[:, 1:-1], kb[:, 1:-1], b_mask[:, 1:-1], heads)
            s_yx = authors_direction(qb[:, 1:-1], ka[:, 1:-1], a_mask[:, 1:-1], heads)
            full = t_att[layer]
            t_xy, t_yx = full[:, :, 1:LQ - 1, LQ:-1], full[:, :, LQ:-1, 1:LQ - 1]
            t_xy, t_yx = t_xy / t_xy.sum(-1, keepdim=True), t_yx / t_yx.sum(-1, keepdim=True)
            total += ((s_xy - t_xy) ** 2).mean() + ((s_yx - t_yx) ** 2).mean()
    assert out["loss_att"].item() == pytest.approx((total / layers).item(), rel=1e-4)
    assert out["loss"].item() == pytest.approx((out["loss_hard"] + 600 * out["loss_att"]).item(), rel=1e-5)


def test_one_logit_term_at_a_time(tmp_path, student_model, pair_data, teacher):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, student_model, pair_data, teacher, use_kd_att="false", use_kd_logit_kl="true",
              use_kd_logit_mse="true")
    message = str(err.value)
    assert "\n" not in message and message.endswith(
        "[virt] use_kd_logit_kl = true and use_kd_logit_mse = true: VIRT distils the logits by one term at a time "
        "(MSE or KL, as the authors' sbert_distill.py); set one to false")
    for term in ("mse", "kl"):
        run = build(tmp_path, student_model, pair_data, teacher, use_kd_att="false", kd_weight_logit=0.4,
                    **{f"use_kd_logit_{term}": "true"})
        model = run.model.train()
        batch = next(iter(run.loaders["train"]))
        out = {k: v.detach() for k, v in model(batch).items()}
        with torch.no_grad():
            t_logits = model.teacher.classifier(model.teacher.bert(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"]).last_hidden_state.mul(batch["attention_mask"][..., None]).sum(1)
                / batch["attention_mask"].sum(1, keepdim=True))
        s_logits = out["logits"]
        if term == "mse":  # tf.losses.mean_squared_error(logits_teacher, logits_student)
            expected = ((t_logits - s_logits) ** 2).mean()
        else:  # KL(teacher || student) at T = 1 (they add 1e-5 to both distributions; not here)
            p_t, p_s = torch.softmax(t_logits, -1), torch.softmax(s_logits, -1)
            expected = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()
        assert set(out) & {"loss_kl", "loss_mse"} == {f"loss_{term}"}
        assert out[f"loss_{term}"].item() == pytest.approx(expected.item(), rel=1e-4)
        assert out["loss"].item() == pytest.approx((out["loss_hard"] + 0.4 * expected).item(), rel=1e-4)
