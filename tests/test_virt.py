"""VIRT: the virtual-attention loss against hand-computed values, tower independence, end-to-end training with
exact resume, the document-cache path of test.py, one-line errors. The formulas against the authors' code
(attention term, late fusion, predictor, logit terms): tests/test_virt_authors.py."""
import json
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
from tests.match_helpers import LQ, match_config_text
from utils.errors import ConfigError


def test_virtual_attention_loss_by_hand():
    student = torch.tensor([[[[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]]])  # (B=1, heads=1, m=2, n=3); row 2 and column 3 padding
    teacher = torch.tensor([[[[0.7, 0.3, 0.0], [0.6, 0.4, 0.0]]]])
    back_s = torch.tensor([[[[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]]]])  # y->x (n=3, m=2)
    back_t = torch.tensor([[[[0.9, 0.1], [0.5, 0.5], [0.3, 0.7]]]])
    # every entry counts, padding included: x->y (0.04 + 0.04 + 0 + 0.16 + 0.16 + 0) / 6, y->x (0.01 + 0.01 + 0 + 0 + 0.04 + 0.04) / 6
    one_layer = 0.4 / 6 + 0.1 / 6
    assert virtual_attention_loss([(student, back_s)], [(teacher, back_t)]).item() == pytest.approx(one_layer)
    # the mean over layers: a second, perfectly matched layer halves it
    assert virtual_attention_loss([(student, back_s), (teacher, back_t)],
                                  [(teacher, back_t), (teacher, back_t)]).item() == pytest.approx(one_layer / 2)


def build(tmp_path, student_model, data, teacher, name="v.config", **sections):
    from process.init_process import init_all
    (tmp_path / name).write_text(match_config_text(student_model, data, "virt", teacher, **sections))
    return init_all(load_config(tmp_path / name), DistInfo(), "train")


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
                                   "use_kd_logit_kl": "true", "use_kd_logit_mse": "false"},
                             train=dict({"epoch": 2, "save_steps": 3, "learning_rate": 3e-3}, **train))


def test_virt_trains_end_to_end_and_resumes_exactly(tmp_path, pair_data, teacher):
    student_model = write_tiny_model(tmp_path / "student", dropout=0.1, seed=1)  # dropout on: resume must restore the RNG
    (tmp_path / "v.config").write_text(virt_text(student_model, pair_data, teacher))
    summary = train_run(load_config(tmp_path / "v.config"), DistInfo(), str(tmp_path / "full"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert all({"loss_att", "loss_kl", "loss_hard"} <= set(r) and "loss_mse" not in r for r in records)
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
