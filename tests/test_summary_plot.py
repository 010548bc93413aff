"""The summary picture of a pipeline (deploy/summary_plot.py) over tiny run folders written by hand: a valid PNG
whatever is missing, the points and curves read from the stages' files, written atomically."""
import json
import os

import pytest

from deploy import model_card, summary_plot
from deploy.summary_plot import default_stages, read_curves, write_summary_png
from tests.test_model_card import PARITY, make_pipeline, make_run

PNG = b"\x89PNG\r\n\x1a\n"


def write_log(run_dir, records):
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def pipeline(tmp_path):
    teacher, student, twin = make_pipeline(tmp_path)
    write_log(teacher, [{"loss": 0.7, "step": 10, "epoch": 0, "lr": 1e-4},
                        {"step": 25, "epoch": 1, "split": "valid", "examples": 100, "accuracy": 0.8, "loss": 0.5}])
    write_log(student, [{"loss": 1.2, "step": 10, "epoch": 0, "lr": 1e-4},
                        {"loss": 1.0, "step": 20, "epoch": 0, "lr": 1e-4},
                        {"step": 25, "epoch": 1, "split": "valid", "examples": 100, "accuracy": 0.75, "loss": 0.5}])
    (student / "export").mkdir()
    (student / "export" / "parity.json").write_text(json.dumps(PARITY))
    make_run(tmp_path / "untested", "kd", None, None, 10, teacher="x/student", teacher_params=20)  # no results.json
    (tmp_path / "notes").mkdir()  # no run in it
    return tmp_path


def test_png_is_written_and_valid(pipeline):
    path = write_summary_png(pipeline, ["teacher", "student", "twin"])
    assert path == pipeline / "summary.png" and path.read_bytes().startswith(PNG)
    assert not [p for p in os.listdir(pipeline) if p.startswith(".")]  # no temp file left


def test_default_stages_are_the_run_folders(pipeline):
    assert default_stages(pipeline) == ["student", "teacher", "twin", "untested"]
    assert write_summary_png(pipeline).read_bytes().startswith(PNG)


def test_points_come_from_results_and_parity(pipeline):
    metric, points = summary_plot._points("student", pipeline / "student")
    assert metric == "accuracy"
    # exports at their test-split score (parity judged them on valid: 0.84 and 0.81 there), never mixing splits
    assert points == [("student", 4.408, 0.83, False), ("student onnx", 3.39, 0.83, True),
                      ("student int8", 1.024, 0.82, True)]
    assert summary_plot._points("untested", pipeline / "untested")[1] == []  # untested: no point
    assert summary_plot._points("teacher", pipeline / "teacher")[1] == [("teacher", 11.658, 0.88, False)]


def test_curves_split_training_and_dev_records(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"loss": 1.0, "step": 10, "epoch": 0}\n{"step": 10, "split": "valid", "accuracy": 0.7, "loss": 0.6}\n'
        '{"loss": 0.9, "step": 20, "epoch": 0}\n{"loss": 0.8, "step": 20, "epoch": 0}\n'  # resumed: the later wins
        '{"loss": 0.5, "st')  # a line cut short
    assert read_curves(tmp_path, "accuracy") == ({10: 1.0, 20: 0.8}, {10: 0.7})
    assert read_curves(tmp_path / "absent", "accuracy") == ({}, {})


def test_missing_pieces_are_skipped(tmp_path):
    assert write_summary_png(tmp_path).read_bytes().startswith(PNG)  # an empty pipeline still gets its picture
    make_run(tmp_path / "student", "kd", None, None, 10, student=None)
    (tmp_path / "student" / "metrics.jsonl").write_text("not json\n")
    (tmp_path / "student" / "export").mkdir()
    (tmp_path / "student" / "export" / "parity.json").write_text("{broken")
    path = write_summary_png(tmp_path, ["teacher", "student"])  # teacher: no folder at all
    assert path.read_bytes().startswith(PNG)
    assert sorted(os.listdir(tmp_path)) == ["student", "summary.png"]


def test_a_failed_write_leaves_the_old_picture(pipeline, monkeypatch):
    (pipeline / "summary.png").write_bytes(b"old")

    def refuse(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(model_card.os, "replace", refuse)
    with pytest.raises(OSError):
        write_summary_png(pipeline)
    assert (pipeline / "summary.png").read_bytes() == b"old"
    assert not [p for p in os.listdir(pipeline) if p.startswith(".")]
