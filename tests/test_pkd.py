"""BERT-PKD: layer choice, the loss composition recomputed by hand, end-to-end training and exact resume."""
import json

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from model.parts.layer_map import pkd_teacher_layers
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import tiny_config_text, write_tiny_model
from utils.errors import ConfigError


@pytest.mark.parametrize("n,k,strategy,expected", [
    (12, 6, "skip", [1, 3, 5, 7, 9]),  # the paper's {2,4,6,8,10}, 1-based
    (12, 6, "last", [6, 7, 8, 9, 10]),  # the paper's {7,...,11}
    (6, 2, "skip", [2]), (6, 2, "last", [4]), (4, 1, "skip", []),
])
def test_pkd_layer_choice(n, k, strategy, expected):
    assert pkd_teacher_layers(n, k, strategy) == expected


def test_pkd_rejects_a_deeper_student():
    with pytest.raises(ConfigError, match=r"\[student\] num_layers = 8: the teacher has only 6 layers"):
        pkd_teacher_layers(6, 8, "skip")


@pytest.fixture(scope="module")
def teacher4(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("teacher4"), layers=4, dropout=0.0)


def pkd_text(teacher, data, **train):
    return tiny_config_text(teacher, data, "pkd", student={"init_from": "teacher", "num_layers": 2},
                            distill={"teacher": str(teacher), "temperature": 2.0, "soft_weight": 0.7, "hard_weight": 0.3},
                            pkd={"strategy": "skip", "beta": 10.0}, train=dict({"epoch": 2, "save_steps": 3}, **train))


def test_pkd_loss_is_kd_plus_ce_plus_beta_patience(tmp_path, teacher4, tiny_data):
    from process.init_process import init_all
    (tmp_path / "p.config").write_text(pkd_text(teacher4, tiny_data))
    run = init_all(load_config(tmp_path / "p.config"), DistInfo(), "train")
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    torch.manual_seed(0)
    out = model(batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        s = model.student(**inputs, output_hidden_states=True)
        t = model.teacher(**inputs, output_hidden_states=True)
    # skip map 4 -> 2: student layer 0 imitates teacher layer 1 (hidden_states index = layer + 1)
    s_cls, t_cls = s.hidden_states[1][:, 0], t.hidden_states[2][:, 0]
    # the authors' src/KD_loss.py: patience_loss = F.mse_loss(normalize(t), normalize(s)) (a mean over units too),
    # distillation_loss = nn.KLDivLoss(reduction='mean')(log_softmax(s/T), softmax(t/T)) * T * T
    pt = F.mse_loss(F.normalize(t_cls, p=2, dim=-1), F.normalize(s_cls, p=2, dim=-1))
    kd = torch.nn.KLDivLoss(reduction="mean")(F.log_softmax(s.logits / 2, dim=1), F.softmax(t.logits / 2, dim=1)) * 2 * 2
    ce = F.cross_entropy(s.logits, batch["labels"])
    assert out["loss_pt"].item() == pytest.approx(pt.item(), rel=1e-5)
    assert out["loss_kd"].item() == pytest.approx(kd.item(), rel=1e-5, abs=1e-7)
    assert out["loss"].item() == pytest.approx((0.7 * kd + 0.3 * ce + 10.0 * pt).item(), rel=1e-5)


def test_patience_and_kd_terms_match_the_authors_reductions():
    """Random tensors: the mean over units (not the sum) and KLDivLoss's element mean (not batchmean), as their code."""
    from model.parts.loss import elementwise_kl_loss, patience_loss
    g = torch.Generator().manual_seed(3)
    s_cls, t_cls = torch.randn(2, 8, 384, generator=g), torch.randn(2, 8, 384, generator=g)  # (layers, batch, H)
    s_n = s_cls / s_cls.pow(2).sum(-1, keepdim=True).sqrt()
    t_n = t_cls / t_cls.pow(2).sum(-1, keepdim=True).sqrt()
    assert patience_loss(s_cls, t_cls).item() == pytest.approx(((s_n - t_n) ** 2).sum().item() / (2 * 8 * 384), rel=1e-5)
    s_log, t_log = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    p_t = t_log.div(10).exp() / t_log.div(10).exp().sum(-1, keepdim=True)
    log_q = s_log.div(10) - s_log.div(10).exp().sum(-1, keepdim=True).log()
    expected = (p_t * (p_t.log() - log_q)).sum() / (8 * 3) * 100
    assert elementwise_kl_loss(s_log, t_log, 10.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_shipped_pkd_is_the_authors_pkd_skip_recipe():
    config = load_config("config/methods/pkd.config")
    assert (config.get("distill", "soft_weight"), config.get("distill", "temperature"), config.get("pkd", "beta"),
            config.get("pkd", "strategy")) == (0.7, 10.0, 500.0, "skip")

def test_pkd_trains_end_to_end_and_resumes_exactly(tmp_path, teacher4, tiny_data):
    (tmp_path / "p.config").write_text(pkd_text(teacher4, tiny_data))
    config = load_config(tmp_path / "p.config")
    summary = train_run(config, DistInfo(), str(tmp_path / "full"))
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert all({"loss_pt", "loss_kd", "loss_hard"} <= set(r) for r in records)
    assert summary["params"] < summary["teacher_params"]
    train_run(load_config(tmp_path / "p.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a = load_checkpoint(checkpoints_in(tmp_path / "full")[-1])["student"]
    b = load_checkpoint(checkpoints_in(tmp_path / "resumed")[-1])["student"]
    assert all(torch.equal(a[k], b[k]) for k in a)
