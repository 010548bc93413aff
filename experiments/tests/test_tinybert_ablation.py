"""experiments/tinybert_ablation.sh: each variant runs the stages it names, chained through the exported student."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "tinybert_ablation.sh"


def run_script(tmp_path, *variants, **extra_env):
    """Run the script with a stand-in `python` that records each call; returns {logdir: argv line}, result."""
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/usr/bin/env bash\necho "$@" >> "$CALLS"\n')
    fake.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "GPU"}
    env.update(PATH=f"{fake.parent}:{os.environ['PATH']}", CALLS=str(tmp_path / "calls"), ROOT="R", TEACHER="T",
               GENERAL="G", TRANSFER="X.tsv", **extra_env)
    result = subprocess.run(["bash", str(SCRIPT), "7", *variants], cwd=REPO, env=env, capture_output=True, text=True)
    calls_file = tmp_path / "calls"
    lines = calls_file.read_text().splitlines() if calls_file.exists() else []
    return {line.split("--logdir ")[1].split()[0]: line for line in lines}, result


def test_two_stage_variant_chains_intermediate_into_prediction(tmp_path):
    calls, result = run_script(tmp_path, "tr_both")
    assert result.returncode == 0, result.stderr
    assert list(calls) == ["R/s7/tr_both/intermediate", "R/s7/tr_both/prediction"]
    inter, pred = calls.values()
    assert "tinybert_intermediate.config" in inter and "model.pretrained=G" in inter and "distill.teacher=T" in inter
    assert "--do_test" not in inter and "data.transfer_file=X.tsv" in inter and "train.max_steps=690" in inter
    assert "model.pretrained=R/s7/tr_both/intermediate/student" in pred and "--do_test" in pred
    assert "data.transfer_file=X.tsv" in pred and "--seed 7" in pred and "train.precision=bf16" in pred


@pytest.mark.parametrize("variant, config, present, absent", [
    ("twin", "tinybert_baseline.config", ["model.pretrained=G", "train.epoch=6"], ["distill.teacher", "transfer_file"]),
    ("pred_only", "tinybert_prediction.config", ["model.pretrained=G", "distill.teacher=T"], ["transfer_file"]),
    ("pred_only_tr", "tinybert_prediction.config", ["data.transfer_file=X.tsv", "train.max_steps=1380"], []),
])
def test_single_stage_variants(tmp_path, variant, config, present, absent):
    calls, result = run_script(tmp_path, variant)
    assert result.returncode == 0, result.stderr
    (line,) = calls.values()
    assert config in line and "--do_test" in line
    assert all(p in line for p in present) and not any(a in line for a in absent)


def test_attention_weight_reaches_only_the_intermediate_stage(tmp_path):
    calls, _ = run_script(tmp_path, "att0")
    assert "tinybert.attention_weight=0" in calls["R/s7/att0/intermediate"]
    assert "attention_weight" not in calls["R/s7/att0/prediction"]


def test_unknown_variant_stops_with_its_name(tmp_path):
    calls, result = run_script(tmp_path, "twin", "bogus", "pred_only")
    assert result.returncode == 2
    assert "unknown variant 'bogus'" in result.stderr
    assert list(calls) == ["R/s7/twin"]  # nothing after the bad name runs


def test_gpu_reaches_every_stage_only_when_asked(tmp_path):
    calls, _ = run_script(tmp_path, "default")
    assert not any("--gpu" in line for line in calls.values())
    (tmp_path / "gpu").mkdir()
    calls, _ = run_script(tmp_path / "gpu", "default", GPU="0")
    assert [line.count("--gpu 0") for line in calls.values()] == [1, 1]
