"""predict.py labels new text with a run's best student: the same probabilities as the exported student, label
names from the run's config, one line per input, and one-line errors for what it cannot label."""
import sys

import pytest
import torch

import predict
from tests.helpers import tiny_config_text
from tests.test_end_to_end import train_tiny
from utils.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model, tiny_data):
    tmp = tmp_path_factory.mktemp("predict")
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 1})  # SST-2 layout: labels "0", "1" in the files
    return train_tiny(tmp, "cls", text)[1]


def test_probabilities_are_the_exported_students(run_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    texts = [("good film", None), ("bad plot and dull acting", None)]
    names, probs = predict.predict(str(run_dir), texts)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "student")
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "student").eval()
    with torch.no_grad():
        expected = model(**tokenizer([a for a, _ in texts], padding=True, return_tensors="pt")).logits.softmax(-1)
    assert names == ["negative", "positive"] and torch.allclose(probs, expected, atol=1e-5)  # GLUE's names for 0, 1


def test_cli_writes_one_line_per_text(run_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "in.txt").write_text("good film\n\nbad plot\tdull acting\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["predict.py", "--run", str(run_dir), "--input", str(tmp_path / "in.txt")])
    predict.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "label\tp(negative)\tp(positive)" and len(lines) == 3
    for line in lines[1:]:
        label, *probs = line.split("\t")
        assert label == ("positive" if float(probs[1]) > float(probs[0]) else "negative")
        assert sum(map(float, probs)) == pytest.approx(1.0, abs=1e-5)


def test_bad_input_and_runs_are_one_line_errors(run_dir, tmp_path):
    (tmp_path / "three.txt").write_text("a\tb\tc\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"three.txt:1: expected one text or two separated by one tab, got 3 fields"):
        predict.read_texts(tmp_path / "three.txt")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no text to label"):
        predict.read_texts(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="no config.ini"):
        predict.predict(str(tmp_path), [("x", None)])
