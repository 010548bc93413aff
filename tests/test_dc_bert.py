"""DC-BERT in the training loop: KD-Worker's optional distillation term (weighted CE + KL to the cross-encoder
teacher), end-to-end training with exact resume and the test through the document cache, one-line errors when
the teacher is needed but missing. The paper's own behaviour is covered in tests/test_dc_bert_paper.py."""
import json

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.match_helpers import match_config_text, write_match_teacher
from utils.errors import ConfigError


def build(tmp_path, teacher, data, **sections):
    from process.init_process import init_all
    (tmp_path / "d.config").write_text(match_config_text(teacher, data, "dc_bert", teacher, **sections))
    return init_all(load_config(tmp_path / "d.config"), DistInfo(), "train")


def test_distill_option_adds_weighted_kl_to_the_teacher(tmp_path, teacher3, pair_data):
    run = build(tmp_path, teacher3, pair_data, dc_bert={"distill": "true"},
                distill={"soft_weight": 0.7, "hard_weight": 0.3, "temperature": 2.0})
    model = run.model.train()
    assert model.teacher is not None and model.teacher_runs_in_train_step
    batch = next(iter(run.loaders["train"]))
    out = {k: v.detach() for k, v in model(batch).items()}
    with torch.no_grad():
        hidden = model.teacher.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                    token_type_ids=batch["token_type_ids"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        t_logits = model.teacher.classifier((hidden * m).sum(1) / m.sum(1))  # the bipartition teacher: mean over valid tokens
    p_t = F.softmax(t_logits / 2, -1)
    kd = (p_t * (p_t.log() - F.log_softmax(out["logits"] / 2, -1))).sum(-1).mean() * 4
    ce = F.cross_entropy(out["logits"], batch["labels"])
    assert out["loss_kd"].item() == pytest.approx(kd.item(), rel=1e-4)
    assert out["loss"].item() == pytest.approx((0.7 * kd + 0.3 * ce).item(), rel=1e-4)


def test_dc_bert_trains_end_to_end_and_resumes_exactly(tmp_path, pair_data):
    teacher3 = write_match_teacher(tmp_path / "teacher", layers=3, dropout=0.1)  # dropout on: resume must restore the RNG
    text = match_config_text(teacher3, pair_data, "dc_bert", teacher3, student={"init_from": "teacher"},
                             train={"epoch": 2, "save_steps": 3, "learning_rate": 3e-3})
    (tmp_path / "d.config").write_text(text)
    summary = train_run(load_config(tmp_path / "d.config"), DistInfo(), str(tmp_path / "full"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert records and all("loss_hard" in r and "loss_kd" not in r for r in records)  # the paper's loss: CE only
    assert summary["test"]["two_tower"]["documents"] == 16
    assert summary["test"]["metrics"]["accuracy"] == summary["test"]["direct_metrics"]["accuracy"]
    assert (tmp_path / "full" / "student" / "document_encoder" / "config.json").is_file()
    train_run(load_config(tmp_path / "d.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a, b = (load_checkpoint(checkpoints_in(tmp_path / d)[-1]) for d in ("full", "resumed"))
    assert all(torch.equal(a["student"][k], b["student"][k]) for k in a["student"])
    assert any(k.startswith("document_encoder.") for k in a["heads"])
    assert all(torch.equal(a["heads"][k], b["heads"][k]) for k in a["heads"])


def test_too_many_interaction_layers_is_one_line_error(tmp_path, teacher3, pair_data):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, teacher3, pair_data, dc_bert={"num_interaction_layers": 4})
    text = (tmp_path / "d.config").read_text()
    line = text.splitlines().index("num_interaction_layers = 4") + 1
    assert str(err.value) == (f"{tmp_path / 'd.config'}:{line}: [dc_bert] num_interaction_layers = 4: must be 1..3 "
                              "([model] pretrained has 3 layers to copy them from)")


@pytest.mark.parametrize("sections, needs", [({"student": {"init_from": "teacher"}}, "[student] init_from = teacher"),
                                             ({"dc_bert": {"distill": "true"}}, "[dc_bert] distill = true")])
def test_missing_teacher_is_one_line_error(tmp_path, teacher3, pair_data, sections, needs):
    from process.init_process import init_all
    (tmp_path / "n.config").write_text(match_config_text(teacher3, pair_data, "dc_bert", **sections))
    with pytest.raises(ConfigError) as err:
        init_all(load_config(tmp_path / "n.config"), DistInfo(), "train")
    assert str(err.value) == (f"[distill] teacher: empty, but {needs} needs the fine-tuned cross-encoder "
                              "(e.g. a bert_bipartition run directory)")
