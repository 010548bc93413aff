"""Pipelines: teacher -> KD hand-off, skip finished stages, resume the unfinished one, bad stage configs."""
import json

import pytest
import torch

from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.pipeline import parse_pipeline, run_pipeline
from tests.helpers import tiny_config_text
from utils.errors import ConfigError

PIPELINE = """[pipeline]
stages = teacher, student

[stage.teacher]
config = teacher.config
do_test = true

[stage.student]
config = kd.config
teacher_from = teacher
do_test = true
"""


def write_pipeline(tmp_path, tiny_model, tiny_data):
    (tmp_path / "teacher.config").write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1}))
    (tmp_path / "kd.config").write_text(tiny_config_text(
        tiny_model, tiny_data, "kd", student={"init_from": "teacher", "num_layers": 1},
        distill={"teacher": "must-be-replaced-by-the-pipeline"}, train={"epoch": 2, "save_steps": 3}))
    (tmp_path / "pipeline.config").write_text(PIPELINE)
    return tmp_path / "pipeline.config"


def test_handoff_skip_finished_and_resume_unfinished(tmp_path, tiny_model, tiny_data, capsys):
    path = write_pipeline(tmp_path, tiny_model, tiny_data)
    logdir = tmp_path / "runs"
    summaries = run_pipeline(path, DistInfo(), str(logdir))
    assert summaries["student"]["teacher_params"] == summaries["teacher"]["params"]
    resolved = (logdir / "student" / "config.ini").read_text()
    assert f"teacher = {logdir / 'teacher' / 'student'}" in resolved
    assert "| teacher |" in capsys.readouterr().out
    final = load_checkpoint(checkpoints_in(logdir / "student")[-1])["student"]
    teacher_ckpts = {p: p.stat().st_mtime_ns for p in (logdir / "teacher" / "checkpoints").iterdir()}

    # simulate a crash of stage 2 after step 3: drop its DONE marker and later checkpoints
    (logdir / "student" / "DONE.json").unlink()
    for ckpt in checkpoints_in(logdir / "student"):
        if ckpt.name != "step-0000003.pt":
            ckpt.unlink()
    again = run_pipeline(path, DistInfo(), str(logdir))
    assert {p: p.stat().st_mtime_ns for p in (logdir / "teacher" / "checkpoints").iterdir()} == teacher_ckpts
    resumed = load_checkpoint(checkpoints_in(logdir / "student")[-1])["student"]
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    assert again["student"]["steps"] == 12 and (logdir / "student" / "DONE.json").is_file()


@pytest.mark.parametrize("text,message", [
    ("[pipeline]\nstages = a\n", "[pipeline] stages: no [stage.a] section"),
    ("[pipeline]\nstages = a\n[stage.a]\nconfig = x.config\nteacher_from = b\n", "[stage.a] teacher_from = b: not an earlier stage (none)"),
    ("[pipeline]\nstages = a\n[stage.a]\nconfig = x.config\ndo_tset = true\n", "[stage.a] do_tset: unknown key; did you mean 'do_test'?"),
    ("[pipeline]\nstages = a\n[stage.a]\nconfig = x.config\n[stage.b]\nconfig = y.config\n", "[stage.b] is not listed in [pipeline] stages"),
])
def test_bad_pipeline_configs(tmp_path, text, message):
    path = tmp_path / "p.config"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        parse_pipeline(path)
    assert message in str(err.value)


def test_missing_handoff_export_is_reported_before_the_stage(tmp_path, tiny_model, tiny_data):
    path = write_pipeline(tmp_path, tiny_model, tiny_data)
    logdir = tmp_path / "runs"
    (logdir / "teacher").mkdir(parents=True)
    (logdir / "teacher" / "DONE.json").write_text(json.dumps({"params": 1}))  # "finished" but no export
    with pytest.raises(ConfigError, match=r"\[stage.student\] teacher_from: .* has no exported student"):
        run_pipeline(path, DistInfo(), str(logdir))


def test_label_sets_of_handed_over_teachers_are_checked_before_any_stage(tmp_path, tiny_model, tiny_data):
    path = write_pipeline(tmp_path, tiny_model, tiny_data)
    (tmp_path / "teacher.config").write_text(tiny_config_text(tiny_model, tiny_data, data={"task": "MNLI"}))
    with pytest.raises(ConfigError, match=r"\[stage.student\] teacher_from = teacher: that stage outputs 3 labels, this one trains on 2"):
        run_pipeline(path, DistInfo(), str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_init_from_starts_a_stage_from_an_earlier_export(tmp_path, tiny_model, tiny_data):
    (tmp_path / "a.config").write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1}))
    # learning rate 0: stage b's final weights are exactly its starting point
    (tmp_path / "b.config").write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1, "learning_rate": 0.0}))
    (tmp_path / "p.config").write_text("[pipeline]\nstages = a, b\n[stage.a]\nconfig = a.config\n"
                                       "[stage.b]\nconfig = b.config\ninit_from = a\n")
    run_pipeline(tmp_path / "p.config", DistInfo(), str(tmp_path / "runs"))
    from transformers import AutoModelForSequenceClassification
    a = AutoModelForSequenceClassification.from_pretrained(tmp_path / "runs" / "a" / "student").state_dict()
    b = load_checkpoint(checkpoints_in(tmp_path / "runs" / "b")[-1])["student"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    original = AutoModelForSequenceClassification.from_pretrained(tiny_model).state_dict()
    assert not all(torch.equal(original[k], b[k]) for k in b)  # it is stage a's training, not the raw model
