"""VIRT: the virtual-attention loss against hand-computed values, the method's attention term against
an independent recomputation (HF attention outputs of the teacher, the student's own q/k projections), tower
independence, end-to-end training with exact resume, the document-cache path of test.py, one-line errors."""
import json
import math
import subprocess
import sys

import pytest
import torch

from init.config import load_config
from model.parts.loss import virtual_attention_loss
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO, write_tiny_model
from tests.match_helpers import LQ, match_config_text, write_match_teacher, write_pair_data
from utils.errors import ConfigError


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return write_pair_data(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return write_match_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def student_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("student"), dropout=0.0, seed=1)


def test_virtual_attention_loss_by_hand():
    student = torch.tensor([[[[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]]])  # (B=1, heads=1, m=2, n=3)
    teacher = torch.tensor([[[[0.7, 0.3, 0.9], [0.6, 0.4, 0.9]]]])
    rows, cols = torch.tensor([[1, 0]]), torch.tensor([[1, 1, 0]])
    # valid pairs: (0,0) and (0,1): ((0.5-0.7)^2 + (0.5-0.3)^2) / 2 = 0.04
    assert virtual_attention_loss(student, teacher, rows, cols).item() == pytest.approx(0.04)
    ones_r, ones_c = torch.ones(1, 2), torch.ones(1, 3)
    full = ((0.04 + 0.04 + 0.81) + (0.16 + 0.16 + 0.81)) / 6
    assert virtual_attention_loss(student, teacher, ones_r, ones_c).item() == pytest.approx(full)


def build(tmp_path, student_model, data, teacher, name="v.config", **sections):
    from process.init_process import init_all
    (tmp_path / name).write_text(match_config_text(student_model, data, "virt", teacher, **sections))
    return init_all(load_config(tmp_path / name), DistInfo(), "train")


def test_attention_term_matches_independent_recomputation(tmp_path, student_model, pair_data, teacher):
    run = build(tmp_path, student_model, pair_data, teacher, virt={"use_kd_att": "true", "kd_weight_att": 500})
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    out = model(batch)
    s, t = model.student, model.teacher
    heads, d = s.config.num_attention_heads, s.config.hidden_size // s.config.num_attention_heads
    a_mask, b_mask = batch["a_attention_mask"], batch["b_attention_mask"]
    with torch.no_grad():
        t.config._attn_implementation = "eager"
        t_att = t(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"],
                  output_attentions=True).attentions
        t.config._attn_implementation = "sdpa"
        ha = s(input_ids=batch["a_input_ids"], attention_mask=a_mask, output_hidden_states=True).hidden_states
        hb = s(input_ids=batch["b_input_ids"], attention_mask=b_mask, output_hidden_states=True).hidden_states
    expected = 0.0
    for layer in range(2):  # 2-layer student <- 2-layer teacher, identity map
        attn = s.encoder.layer[layer].attention.self
        split = lambda x: x.view(x.shape[0], x.shape[1], heads, d).transpose(1, 2)
        qa, ka = split(attn.query(ha[layer])), split(attn.key(ha[layer]))
        qb, kb = split(attn.query(hb[layer]))[:, :, 1:], split(attn.key(hb[layer]))[:, :, 1:]
        bm = b_mask[:, 1:]
        s_xy = (qa @ kb.transpose(-1, -2) / math.sqrt(d)).masked_fill(bm[:, None, None, :] == 0, -1e9).softmax(-1)
        s_yx = (qb @ ka.transpose(-1, -2) / math.sqrt(d)).masked_fill(a_mask[:, None, None, :] == 0, -1e9).softmax(-1)
        full = t_att[layer]
        t_xy, t_yx = full[:, :, :LQ, LQ:], full[:, :, LQ:, :LQ]
        t_xy = t_xy / t_xy.sum(-1, keepdim=True)  # renormalised over the other text's (valid) tokens
        t_yx = t_yx / t_yx.sum(-1, keepdim=True)
        for s_map, t_map, rows, cols in ((s_xy, t_xy, a_mask, bm), (s_yx, t_yx, bm, a_mask)):
            pair = (rows[:, None, :, None] * cols[:, None, None, :]).float().expand_as(s_map)
            expected += (((s_map - t_map) ** 2) * pair).sum() / pair.sum()
    out = {k: v.detach() for k, v in out.items()}
    assert out["loss_att"].item() == pytest.approx(float(expected.detach()), rel=1e-4)
    assert out["loss"].item() == pytest.approx((out["loss_hard"] + 500 * out["loss_att"]).item(), rel=1e-5)


def test_towers_are_independent(tmp_path, student_model, pair_data, teacher):
    run = build(tmp_path, student_model, pair_data, teacher, virt={"model_type": "siamese", "use_kd_att": "false"})
    model, fmt = run.model.eval(), run.formatter
    one = fmt([{"text_a": "the movie was bad", "text_b": "good plot", "label": 0, "index": 0}])
    two = fmt([{"text_a": "a very dull and boring story", "text_b": "good plot", "label": 0, "index": 0}])
    # swap_pair: text_b is the query (tower a); a different document must not move the query tower's states
    assert torch.equal(one["a_input_ids"], two["a_input_ids"]) and not torch.equal(one["b_input_ids"], two["b_input_ids"])
    with torch.no_grad():
        tower = lambda b: model.tower({"input_ids": b["a_input_ids"], "attention_mask": b["a_attention_mask"]})
        assert torch.equal(tower(one), tower(two))
        from transformers import AutoModel  # the cross-encoder, by contrast, mixes the texts
        cross = AutoModel.from_pretrained(str(teacher))
        state = lambda b: cross(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state[:, :LQ]
        assert not torch.allclose(state(one), state(two))


def virt_text(student_model, data, teacher, **train):
    return match_config_text(student_model, data, "virt", teacher,
                             virt={"model_type": "late_fusion", "use_kd_att": "true", "kd_weight_att": 100,
                                   "use_kd_logit_kl": "true", "use_kd_logit_mse": "true"},
                             train=dict({"epoch": 2, "save_steps": 3, "learning_rate": 3e-3}, **train))


def test_virt_trains_end_to_end_and_resumes_exactly(tmp_path, pair_data, teacher):
    student_model = write_tiny_model(tmp_path / "student", dropout=0.1, seed=1)  # dropout on: resume must restore the RNG
    (tmp_path / "v.config").write_text(virt_text(student_model, pair_data, teacher))
    summary = train_run(load_config(tmp_path / "v.config"), DistInfo(), str(tmp_path / "full"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert all({"loss_att", "loss_kl", "loss_mse", "loss_hard"} <= set(r) for r in records)
    assert records[-1]["loss_att"] < records[0]["loss_att"]
    test = summary["test"]
    assert test["two_tower"]["documents"] == 16 and test["two_tower"]["online_flops_per_query"] > 0
    assert test["metrics"]["accuracy"] == test["direct_metrics"]["accuracy"]  # cached path = direct path
    assert test["metrics"]["loss"] == pytest.approx(test["direct_metrics"]["loss"], abs=1e-5)
    assert (tmp_path / "full" / "student" / "match_head.safetensors").is_file()
    train_run(load_config(tmp_path / "v.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a, b = (load_checkpoint(checkpoints_in(tmp_path / d)[-1]) for d in ("full", "resumed"))
    assert all(torch.equal(a["student"][k], b["student"][k]) for k in a["student"])
    assert a["heads"].keys() == b["heads"].keys() and all(torch.equal(a["heads"][k], b["heads"][k]) for k in a["heads"])


def test_test_cli_evaluates_through_the_document_cache(tmp_path, student_model, pair_data):
    (tmp_path / "s.config").write_text(match_config_text(student_model, pair_data, "virt",
                                                         virt={"model_type": "siamese", "use_kd_att": "false"},
                                                         train={"epoch": 1}))
    train_run(load_config(tmp_path / "s.config"), DistInfo(), str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, str(REPO / "test.py"), "--config", str(tmp_path / "s.config"),
                           "--checkpoint", str(tmp_path / "run"), "--logdir", str(tmp_path / "test")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    cost = results["two_tower"]
    assert cost["documents"] == 16 and cost["queries"] == 16
    assert cost["online_latency_ms"] > 0 and results["latency_ms"] == cost["online_latency_ms"]
    assert cost["online_flops_per_query"] < results["flops"]["online"] + results["flops"]["offline"]
    assert results["metrics"]["accuracy"] == results["direct_metrics"]["accuracy"]


def test_kd_without_teacher_is_one_line_error(tmp_path, student_model, pair_data):
    from process.init_process import init_all
    (tmp_path / "bad.config").write_text(match_config_text(student_model, pair_data, "virt", virt={"use_kd_att": "true"}))
    with pytest.raises(ConfigError) as err:
        init_all(load_config(tmp_path / "bad.config"), DistInfo(), "train")
    assert str(err.value) == ("[distill] teacher: empty, but [virt] use_kd_att / "
                              "use_kd_logit_kl / use_kd_logit_mse need the cross-encoder teacher")
