"""The deployable student (deploy/): ONNX fp32 equals the PyTorch student, int8 copies run and are judged, a forced
metric drop is exit 3 with the numbers, GLUE label names reach transformers' pipeline."""
import copy
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from tests.helpers import tiny_config_text
from tests.test_end_to_end import train_tiny


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model, tiny_data):
    """A tiny trained run whose dev labels are then set to its student's own predictions (the tiny student stays
    at chance on the tiny data): the PyTorch student scores 1.0, so a copy that says the opposite scores 0.0."""
    from transformers import AutoModelForSequenceClassification
    tmp = tmp_path_factory.mktemp("export")
    shutil.copytree(tiny_data, tmp / "data")
    run = train_tiny(tmp, "cls", tiny_config_text(tiny_model, tmp / "data", train={"epoch": 2}), do_test=True)[1]
    rows = (tmp / "data" / "dev.tsv").read_text().splitlines()
    texts = [line.rsplit("\t", 1)[0] for line in rows[1:]]
    model = AutoModelForSequenceClassification.from_pretrained(run / "student").eval()
    with torch.no_grad():
        predicted = model(**tokenized(run, texts)).logits.argmax(-1).tolist()
    (tmp / "data" / "dev.tsv").write_text("\n".join([rows[0]] + [f"{t}\t{p}" for t, p in zip(texts, predicted)]) + "\n")
    return run


@pytest.fixture(scope="module")
def exported(run_dir):
    from deploy.parity import export_run
    return export_run(run_dir)


def tokenized(run_dir, texts):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "student")
    return tokenizer(texts, padding=True, return_tensors="pt")


def test_onnx_fp32_equals_the_pytorch_student_on_new_lengths(run_dir, exported):
    """Texts of other lengths and padding than the traced sample: same logits within 1e-4."""
    import onnxruntime as ort
    from transformers import AutoModelForSequenceClassification
    batch = tokenized(run_dir, ["a good film", "the plot was dull and far too long for what it had to say", "fine"])
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "student").eval()
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    session = ort.InferenceSession(str(run_dir / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
    assert got.shape == expected.shape == (3, 2)
    assert np.abs(got - expected).max() < 1e-4


def test_int8_copies_run_and_the_parity_record_is_written(run_dir, exported):
    from deploy.onnx_export import load_torch_int8
    record = json.loads((run_dir / "export" / "parity.json").read_text())
    assert record == json.loads(json.dumps(exported))
    assert set(record["variants"]) == {"pytorch", "onnx", "onnx_int8", "torch_int8"}
    assert record["examples"] == 16 and record["metric"] == "accuracy" and record["passed"] in (True, False)
    assert record["variants"]["onnx"]["max_abs_diff"] < 1e-4 and record["variants"]["pytorch"]["max_abs_diff"] == 0
    for variant in record["variants"].values():
        assert {"batch_1", "batch_32"} <= set(variant["latency_ms"]) and 0 <= variant["metric"] <= 1
    # the int8 ONNX file is smaller than the fp32 one and the torch int8 state reloads to the exported outputs
    assert (run_dir / "export" / "model_int8.onnx").stat().st_size < (run_dir / "export" / "model.onnx").stat().st_size
    model = load_torch_int8(run_dir / "student", run_dir / "export" / "torch_int8.pt")
    batch = tokenized(run_dir, ["a good film", "dull"])
    with torch.no_grad():
        logits = model(**batch).logits
    assert torch.isfinite(logits).all() and not any(p.name.startswith(".export") for p in run_dir.iterdir())


def test_metric_drop_past_the_threshold_exits_3_with_the_numbers(run_dir, exported, monkeypatch, capsys):
    """The torch int8 copy made to predict the other label: tools/export.py keeps the files, marks parity.json
    failed and exits 3 naming the variant, both scores and the threshold."""
    import deploy.parity as parity
    from tools import export as export_tool
    quantize = parity.quantize_torch

    def flipped(model):
        model = copy.deepcopy(model)
        model.classifier.weight.data.neg_()  # negated logits: the other of the two labels, every time
        model.classifier.bias.data.neg_()
        return quantize(model)

    monkeypatch.setattr(parity, "quantize_torch", flipped)
    monkeypatch.setattr(sys, "argv", ["export.py", "--run", str(run_dir), "--max_metric_drop", "0.5"])
    from process.cli import main_guard
    with pytest.raises(SystemExit) as stop:
        main_guard(export_tool.main)
    assert stop.value.code == 3
    record = json.loads((run_dir / "export" / "parity.json").read_text())
    pytorch, int8 = record["variants"]["pytorch"]["metric"], record["variants"]["torch_int8"]["metric"]
    assert (pytorch, int8, record["variants"]["onnx"]["metric"]) == (1.0, 0.0, 1.0)
    drop = 100 * (pytorch - int8)
    err = capsys.readouterr().err.strip()
    assert record["passed"] is False and drop > 0.5
    assert err == (f"error: {run_dir}/export/parity.json: the export failed its parity check: torch_int8 accuracy "
                   f"{int8:.4f} is {drop:.2f} points below the PyTorch student's {pytorch:.4f} (more than "
                   "[export] max_metric_drop = 0.5)")
    assert (run_dir / "export" / "model.onnx").is_file()  # the files stay


def test_pipeline_returns_glue_label_names(run_dir):
    """SST-2's files say 0 / 1; the exported config names them as GLUE does, so pipeline() prints names."""
    from transformers import pipeline
    classify = pipeline("text-classification", model=str(run_dir / "student"), device="cpu")
    labels = {row["label"] for row in classify(["a good film", "a dull plot"])}
    assert labels <= {"negative", "positive"} and labels


def test_a_run_without_a_classifier_export_is_a_one_line_error(tmp_path):
    from deploy.parity import export_run
    from utils.errors import ConfigError
    with pytest.raises(ConfigError, match=r"^--run .*: no config.ini \(not a run directory made by train.py\)$"):
        export_run(tmp_path)


@pytest.mark.parametrize("model_name,teacher_width", [("mul_mse", 32), ("bottle_distill", 32), ("mul_mse", 48)])
def test_sentence_encoder_exports_what_sentence_transformers_encodes(tmp_path, model_name, teacher_width):
    """A multilingual student (plain BERT, or Ding et al.'s bottleneck student with its model code in the folder,
    or a student projected to a wider teacher by a Dense module): the ONNX file returns
    SentenceTransformer(DIR/student).encode's embedding, and parity scores every variant with the run's own
    multilingual evaluator (teacher side computed once)."""
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from deploy.parity import export_run
    from tests.test_multilingual import ml_text, write_encoder, write_parallel
    enc, par = write_encoder(tmp_path / "enc"), write_parallel(tmp_path / "par")
    teacher = enc if teacher_width == 32 else write_encoder(tmp_path / "wide", hidden=teacher_width, seed=1)
    text = ml_text(enc, par, model_name, tmp_path / "cache", train={"epoch": 1}, distill={"teacher": str(teacher)})
    run = train_tiny(tmp_path, model_name, text)[1]
    record = export_run(run)
    assert record["output"] == "sentence embedding" and record["metric"] == "accuracy"
    assert record["variants"]["onnx"]["max_abs_diff"] < 1e-4
    assert {"accuracy", "mse"} <= set(record["variants"]["onnx_int8"]["metrics"])
    texts = ["a small test sentence", "ein kleiner Testsatz, etwas länger als der erste"]
    expected = SentenceTransformer(str(run / "student"), device="cpu", trust_remote_code=True).encode(texts)
    session = ort.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {k: v for k, v in tokenized(run, texts).items() if k in {i.name for i in session.get_inputs()}}
    got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
    assert got.shape == expected.shape == (2, teacher_width) and np.abs(got - expected).max() < 1e-4


def test_a_distilled_classifier_exports_without_its_teacher(tmp_path, tiny_model, tiny_data):
    """A KD run's config names its teacher (often a path relative to where it ran): the export needs only the
    student, so a teacher moved away since does not stop it."""
    from deploy.parity import export_run
    shutil.copytree(tiny_model, tmp_path / "teacher")
    text = tiny_config_text(tiny_model, tiny_data, "kd", train={"epoch": 1}, distill={"teacher": str(tmp_path / "teacher")})
    run = train_tiny(tmp_path, "kd", text)[1]
    shutil.rmtree(tmp_path / "teacher")
    assert export_run(run, max_metric_drop=100)["variants"]["onnx"]["max_abs_diff"] < 1e-4


def test_the_table_warns_when_latency_was_timed_on_a_busy_machine(exported):
    """A timing that got under half of its cores is said to be unreliable in the printed table."""
    from deploy.parity import parity_table
    busy = dict(exported, latency_cpu_share={"batch_1": 0.93, "batch_32": 0.41}, latency_reliable=False)
    assert parity_table(busy).endswith("latencies timed with 41% of the cores (other jobs running?): not reliable, "
                                       "measure again on an idle machine")
    assert "not reliable" not in parity_table(dict(exported, latency_reliable=True))
