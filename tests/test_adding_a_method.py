"""docs/ADDING_A_METHOD.md's template is real code: registered for one test, it trains through the unchanged loop and
its loss is Hinton's KD plus cross-entropy, computed here by hand."""
import re
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from init.registry import model_list
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import tiny_config_text, write_tiny_model

REPO = Path(__file__).resolve().parent.parent


def template_module():
    text = (REPO / "docs" / "ADDING_A_METHOD.md").read_text()
    code = re.search(r"## Template \(30 lines\)\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.splitlines()) <= 30
    module = types.ModuleType("my_method")
    exec(compile(code, "docs/ADDING_A_METHOD.md", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("teacher"), layers=2, dropout=0.0)


def test_template_trains_and_its_loss_is_kd_plus_ce(tmp_path, monkeypatch, teacher, tiny_data):
    monkeypatch.setitem(model_list, "my_method", template_module().MyMethod)
    (tmp_path / "m.config").write_text(tiny_config_text(
        teacher, tiny_data, "my_method", student={"init_from": "teacher", "num_layers": 1},
        distill={"teacher": str(teacher), "temperature": 2.0, "soft_weight": 0.5}, train={"epoch": 1}))
    config = load_config(tmp_path / "m.config")
    from process.init_process import init_all
    run = init_all(config, DistInfo(), "train")
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    out = model(batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        s, t = model.student(**inputs).logits, model.teacher(**inputs).logits
    p_t = F.softmax(t / 2, -1)
    kd = (p_t * (p_t.log() - F.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    assert out["loss"].item() == pytest.approx((0.5 * kd + F.cross_entropy(s, batch["labels"])).item(), rel=1e-5)
    summary = train_run(load_config(tmp_path / "m.config"), DistInfo(), str(tmp_path / "run"), do_test=True)
    assert summary["steps"] == 6 and "accuracy" in summary["test"]["metrics"]
    assert (tmp_path / "run" / "student" / "config.json").is_file()
