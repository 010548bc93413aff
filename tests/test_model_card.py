"""The model card (deploy/model_card.py) of a run, over tiny run folders written by hand: it names the run's own
numbers (scores, retention, the gain over the twin, parameters, latency), the parity table only when an export
checked one, load commands with the real path for the kind of folder it is, and it is written atomically."""
import json
import os
import re

import pytest

from deploy import model_card
from deploy.model_card import selecting_metric, write_model_card
from init.config import load_config_text
from init.registry import model_list
from model.base import DistillModel

BERT = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "num_hidden_layers": 2,
        "hidden_size": 384, "id2label": {"0": "negative", "1": "positive"}}


def make_run(run_dir, model_name="kd", metrics=None, latency=None, params=None, teacher="", teacher_params=None,
             teacher_latency=None, student=BERT, config_path="config/quickstart/kd.config", extra_ini=""):
    """A run folder as train.py leaves it: config.ini, train_summary.json, results.json (when `metrics`),
    student/config.json (when `student`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.ini").write_text(
        f"# resolved from {config_path}\n[model]\nmodel_name = {model_name}\n[data]\ntask = SST-2\n"
        "train_file = data/sample/train.tsv\nvalid_file = data/sample/dev.tsv\ntest_file = data/sample/test.tsv\n"
        f"[distill]\nteacher = {teacher}\n{extra_ini}")
    summary = {"config": config_path, "best_metric": 0.84, "best_step": 50, "steps": 150, "params": params,
               "teacher_params": teacher_params}
    if metrics is not None:
        results = {"metrics": {"examples": 100, **metrics, "loss": 0.39}, "params": params, "latency_ms": latency}
        if teacher_latency is not None:
            results["teacher_latency_ms"] = teacher_latency
        (run_dir / "results.json").write_text(json.dumps(results))
        summary["test"] = results
    (run_dir / "train_summary.json").write_text(json.dumps(summary))
    if student is not None:
        (run_dir / "student").mkdir(exist_ok=True)
        (run_dir / "student" / "config.json").write_text(json.dumps(student))
    return run_dir


def make_pipeline(root):
    """teacher (0.88), its KD student (0.83) and the student's no-teacher twin (0.80)."""
    teacher = make_run(root / "teacher", "bert_cls", {"accuracy": 0.88}, 11.658, 22713986,
                       student={**BERT, "num_hidden_layers": 6}, config_path="config/quickstart/teacher.config")
    student = make_run(root / "student", "kd", {"accuracy": 0.83}, 4.408, 15616130, teacher=teacher / "student",
                       teacher_params=22713986, teacher_latency=11.9)
    twin = make_run(root / "twin", "bert_cls", {"accuracy": 0.80}, 4.51, 15616130, config_path="twin.config")
    return teacher, student, twin


PARITY = {"passed": True, "reason": None, "split": "valid", "examples": 100, "metric": "accuracy",
          "max_metric_drop": 1.0, "threads": 2, "cpu": "AMD EPYC 9B14",
          "variants": {name: {"file": file, "metrics": {"accuracy": acc}, "metric": acc, "max_abs_diff": diff,
                              "latency_ms": {"batch_1": {"median_ms": b1, "iqr_ms": 0.3},
                                             "batch_32": {"median_ms": b32, "iqr_ms": 1.0}}, "size_mb": size,
                              "test_metrics": {"accuracy": test}, "test_metric": test}
                       for name, file, acc, diff, b1, b32, size, test in [
                           ("pytorch", "student", 0.84, 0.0, 7.1, 40.2, 62.5, 0.83),
                           ("onnx", "export/model.onnx", 0.84, 1.4e-06, 3.39, 14.28, 62.4, 0.83),
                           ("onnx_int8", "export/model_int8.onnx", 0.81, 0.572, 1.024, 2.254, 15.9, 0.82),
                           ("torch_int8", "export/torch_int8.pt", 0.84, 0.53, 19.7, 28.7, 49.0, 0.83)]}}


def test_card_names_the_runs_own_numbers(tmp_path):
    teacher, student, twin = make_pipeline(tmp_path)
    path = write_model_card(student, twin_dir=twin)
    assert path == student / "student" / "README.md"
    card = path.read_text()
    assert card.startswith("# student: distilled with `kd` (Hinton et al. 2015, Distilling the Knowledge in a Neural")
    assert f"`{teacher / 'student'}`, 22,713,986 parameters, test accuracy 0.8800" in card
    assert "BertForSequenceClassification, type bert, layers 2, hidden 384, 15,616,130 parameters" in card
    assert "negative, positive" in card and "task SST-2" in card and "`data/sample/test.tsv`" in card
    assert "`config/quickstart/kd.config`" in card and "`config.ini`" in card
    assert "| teacher | 0.8800 | 11.900 | 22,713,986 |" in card  # latency measured beside the student's
    assert "| student (this model) | 0.8300 | 4.408 | 15,616,130 |" in card
    assert "| twin (same student, no teacher) | 0.8000 | 4.510 | 15,616,130 |" in card
    assert f"{0.83 / 0.88 * 100:.2f}%" == "94.32%" and "Retention: 94.32% of the teacher's accuracy" in card
    assert "Gain over the twin: +3.00 points of accuracy" in card
    assert "Exported files" not in card and "parity" not in card and "onnxruntime" not in card
    assert "n/a" not in card and "None" not in card


def test_teacher_score_is_left_out_when_the_teacher_was_not_tested(tmp_path):
    _, student, _ = make_pipeline(tmp_path)
    (tmp_path / "teacher" / "results.json").unlink()
    (tmp_path / "teacher" / "train_summary.json").unlink()
    card = write_model_card(student).read_text()
    assert "22,713,986 parameters\n" in card and "test accuracy 0.88" not in card
    assert "| teacher |  | 11.900 | 22,713,986 |" in card and "Retention" not in card and "twin" not in card


def test_load_commands_for_a_classifier_carry_the_real_path(tmp_path):
    _, student, _ = make_pipeline(tmp_path)
    card = write_model_card(student).read_text()
    folder = json.dumps(str(student / "student"))
    assert f"AutoModelForSequenceClassification.from_pretrained({folder})" in card
    assert f"AutoTokenizer.from_pretrained({folder})" in card
    assert f'pipeline("text-classification", model={folder})' in card
    assert "SentenceTransformer" not in card


def test_load_commands_for_a_sentence_encoder(tmp_path):
    run = make_run(tmp_path / "mse", "mul_mse", {"accuracy": 0.91}, 3.2, 21000000, teacher="teacher/student",
                   teacher_params=22713986, student={"architectures": ["BertModel"], "model_type": "bert",
                                                     "num_hidden_layers": 3, "hidden_size": 384})
    (run / "student" / "modules.json").write_text("[]")
    card = write_model_card(run).read_text()
    folder = json.dumps(str(run / "student"))
    assert "Reimers & Gurevych 2020" in card
    assert f"SentenceTransformer({folder})" in card and f"AutoModel.from_pretrained({folder})" in card
    assert "AutoModelForSequenceClassification" not in card and "text-classification" not in card


def test_parity_table_when_an_export_ran(tmp_path):
    _, student, _ = make_pipeline(tmp_path)
    (student / "export").mkdir()
    (student / "export" / "parity.json").write_text(json.dumps(PARITY))
    (student / "export" / "model.onnx").write_bytes(b"onnx")
    card = write_model_card(student).read_text()
    assert "Parity check: **passed**" in card and "AMD EPYC 9B14" in card
    assert "| onnx_int8 | export/model_int8.onnx | 0.8100 | 0.572 | 1.024 | 2.254 | 15.9 |" in card
    assert "| onnx | export/model.onnx | 0.8400 | 1.4e-06 | 3.390 | 14.280 | 62.4 |" in card
    assert "| pytorch | student | 0.8400 | 0 | 7.100 | 40.200 | 62.5 |" in card
    onnx = json.dumps(str(student / "export" / "model.onnx"))
    assert f"onnxruntime.InferenceSession({onnx})" in card and 'return_tensors="np"' in card

    failed = {**PARITY, "passed": False, "reason": "onnx_int8 accuracy is 3.00 points below"}
    (student / "export" / "parity.json").write_text(json.dumps(failed))
    assert "**failed (onnx_int8 accuracy is 3.00 points below)**" in write_model_card(student).read_text()


def test_a_teacher_is_fine_tuned_and_has_no_teacher_rows(tmp_path):
    teacher, _, _ = make_pipeline(tmp_path)
    card = write_model_card(teacher).read_text()
    assert card.startswith("# teacher: fine-tuned on labels (no teacher)")
    assert "**Teacher**" not in card and "| teacher |" not in card and "Retention" not in card
    assert "| this model | 0.8800 | 11.658 | 22,713,986 |" in card and "layers 6" in card


def test_missing_files_leave_fields_out(tmp_path):
    run = tmp_path / "bare"
    (run / "student").mkdir(parents=True)
    (run / "student" / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    card = write_model_card(run).read_text()
    assert card.startswith("# bare: fine-tuned on labels (no teacher)")
    assert "Results" not in card and "Data" not in card and "None" not in card and "n/a" not in card
    assert "AutoModel.from_pretrained" in card


def test_no_student_folder_no_card(tmp_path):
    run = make_run(tmp_path / "general", "distilbert", {"accuracy": 0.5}, 1.0, 10, student=None)
    assert write_model_card(run) is None and not (run / "student").exists()


def test_the_selecting_metric_comes_from_the_config(tmp_path):
    metrics = {"examples": 10, "accuracy": 0.7, "mcc": 0.4, "loss": 0.5}
    assert selecting_metric(load_config_text("[model]\nmodel_name = kd\n[data]\ntask = CoLA\n"), metrics) == "mcc"
    chosen = load_config_text("[model]\nmodel_name = kd\n[data]\ntask = CoLA\n[train]\nmetric = accuracy\n")
    assert selecting_metric(chosen, metrics) == "accuracy"
    assert selecting_metric(None, {"examples": 10, "loss": 0.1, "spearman": 0.8}) == "spearman"
    run = make_run(tmp_path / "cola", "pkd", {"accuracy": 0.7, "mcc": 0.4}, 2.0, 10, teacher="t/student",
                   teacher_params=20, extra_ini="[train]\nmetric = mcc\n")
    card = write_model_card(run).read_text()
    assert "Sun et al. 2019, Patient Knowledge Distillation" in card and "| model | mcc |" in card


@pytest.mark.parametrize("fail", ["encode", "replace"])
def test_write_is_atomic(tmp_path, monkeypatch, fail):
    _, student, _ = make_pipeline(tmp_path)
    card = write_model_card(student)
    assert sorted(os.listdir(card.parent)) == ["README.md", "config.json"]  # no temp file left
    card.write_text("old card")
    if fail == "encode":  # the text cannot be written: the failure comes after the temp file exists
        monkeypatch.setattr(model_card, "render_card", lambda run_dir, twin_dir=None: "new card \ud800")
        error = UnicodeEncodeError
    else:
        def refuse(src, dst):
            raise OSError("disk full")
        monkeypatch.setattr(model_card.os, "replace", refuse)
        error = OSError
    with pytest.raises(error):
        write_model_card(student)
    assert card.read_text() == "old card"
    assert sorted(os.listdir(card.parent)) == ["README.md", "config.json"]


def test_every_distillation_method_names_its_paper():
    assert DistillModel.paper is None
    fine_tuning = {"bert_cls", "bilstm", "bert_bipartition", "kd_hidden", "mlm_head"}
    assert sorted(n for n, cls in model_list.items() if cls.paper is None) == sorted(fine_tuning)
    for name, cls in model_list.items():
        assert cls.paper is None or re.match(r"[A-Z][^,]* (19|20)\d\d, [A-Z]", cls.paper), name  # "Authors year, Title"
    ding = {n: model_list[n].paper for n in model_list if n == "bottle_distill" or n.startswith("rec_")}
    assert len(ding) == 8 and {p.split(",")[0] for p in ding.values()} == {"Ding et al. 2022"}
    assert model_list["tinybert"].paper.startswith("Jiao et al. 2020, TinyBERT")


def test_load_commands_for_a_word_level_student(tmp_path):
    """A BiLSTM / ELMo / LTD student is our own format: the card gives predict.py, not a transformers loader it would
    fail with; an LTD student with a sentence-transformers view also gives that."""
    run = make_run(tmp_path / "ltd", "ltd", {"accuracy": 0.81}, 0.3, 337154, teacher="teacher/student",
                   teacher_params=22713986, student={"architectures": ["LtdStudent"], "model_type": "kdw_ltd"})
    card = write_model_card(run).read_text()
    assert f"python predict.py --run {json.dumps(str(run))} --input texts.txt" in card
    assert "AutoModel" not in card and "AutoTokenizer" not in card and "SentenceTransformer" not in card
    (run / "student" / "modules.json").write_text("[]")
    card = write_model_card(run).read_text()
    assert f"SentenceTransformer({json.dumps(str(run / 'student'))})" in card
    assert f"StaticEncoder({json.dumps(str(run / 'student'))}).encode(" in card


def test_a_held_out_split_is_named_on_the_card(tmp_path):
    """valid_file = test_file = train_file would read as testing on the training data without the split's line."""
    run = make_run(tmp_path / "run", "bert_cls", {"accuracy": 0.8}, 4.0, 100)
    ini = run / "config.ini"
    ini.write_text(ini.read_text().replace("[data]\n", "[data]\nheldout_every = 10\n"))
    assert "heldout_every 10 (valid and test: held-out rows of train_file, never trained on)" in \
        write_model_card(run).read_text()
    plain = make_run(tmp_path / "plain", "bert_cls", {"accuracy": 0.8}, 4.0, 100)
    assert "heldout_every" not in write_model_card(plain).read_text()
