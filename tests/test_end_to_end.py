"""Tiny end-to-end runs: train + test, KD from a trained teacher, exact resume, HF export."""
import json

import pytest
import torch

from init.config import load_config
from process.distributed import DistInfo
from process.init_process import init_all
from process.test_process import run_test
from process.train_entry import train_run
from tests.helpers import tiny_config_text


def train_tiny(tmp_path, name, text, checkpoint=None, do_test=False):
    path = tmp_path / f"{name}.config"
    path.write_text(text)
    config = load_config(path)
    logdir = tmp_path / name
    return train_run(config, DistInfo(), str(logdir), checkpoint, do_test), logdir


def final_student(logdir):
    from process.checkpoint import checkpoints_in, load_checkpoint
    return load_checkpoint(checkpoints_in(logdir)[-1])["student"]


def test_train_then_test_writes_results_and_hf_export(tmp_path, tiny_model, tiny_data):
    summary, logdir = train_tiny(tmp_path, "cls", tiny_config_text(tiny_model, tiny_data, train={"epoch": 4}), do_test=True)
    results = json.loads((logdir / "results.json").read_text())
    assert set(results) >= {"config", "checkpoint", "metrics", "params"}
    assert results["metrics"]["examples"] == 16 and 0.0 <= results["metrics"]["accuracy"] <= 1.0
    assert results["params"] == summary["params"] > 0
    assert (logdir / "config.ini").is_file()
    records = [json.loads(l) for l in (logdir / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if "split" not in r]
    assert len(train_losses) == 24 and train_losses[-1] < train_losses[0]  # 4 epochs x 6 steps; it learns
    assert [r["step"] for r in records if r.get("split") == "valid"] == [6, 12, 18, 24]  # every epoch, the last too
    from transformers import AutoModel, AutoTokenizer
    model, tok = AutoModel.from_pretrained(logdir / "student"), AutoTokenizer.from_pretrained(logdir / "student")
    assert model.config.num_hidden_layers == 2 and tok("good film")["input_ids"][0] == tok.cls_token_id


def test_test_cli_path_matches_in_process_metrics(tmp_path, tiny_model, tiny_data):
    text = tiny_config_text(tiny_model, tiny_data)
    summary, logdir = train_tiny(tmp_path, "cls", text, do_test=True)
    config = load_config(tmp_path / "cls.config")
    run = init_all(config, DistInfo(), "test", str(logdir))  # a run dir -> its best checkpoint
    (tmp_path / "retest").mkdir()
    again = run_test(run, str(tmp_path / "retest"))
    assert run.checkpoint.endswith("best.pt")
    assert again["metrics"] == summary["test"]["metrics"]


def test_kd_student_from_teacher_layers(tmp_path, tiny_model, tiny_data):
    _, teacher_dir = train_tiny(tmp_path, "teacher", tiny_config_text(tiny_model, tiny_data))
    text = tiny_config_text(tiny_model, tiny_data, "kd", student={"init_from": "teacher", "num_layers": 1},
                            distill={"teacher": str(teacher_dir), "temperature": 2.0, "hard_weight": 0.5})
    summary, logdir = train_tiny(tmp_path, "kd", text, do_test=True)
    assert summary["teacher_params"] > summary["params"]
    records = [json.loads(l) for l in (logdir / "metrics.jsonl").read_text().splitlines() if "split" not in l]
    assert all("loss_kd" in r and "loss_hard" in r for r in records)
    results = json.loads((logdir / "results.json").read_text())
    assert results["teacher_params"] == summary["teacher_params"] and "speedup_vs_teacher" in results
    from transformers import AutoModelForSequenceClassification
    student = AutoModelForSequenceClassification.from_pretrained(logdir / "student")
    assert student.config.num_hidden_layers == 1


@pytest.mark.parametrize("resume_step", [3, 6, 9])  # mid-epoch, epoch boundary, mid second epoch
def test_resume_equals_uninterrupted_bitwise(tmp_path, tiny_model, tiny_data, resume_step):
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 2, "save_steps": 3, "eval_steps": 4})
    _, full = train_tiny(tmp_path, "full", text)  # dropout 0.1 is on: RNG state must be restored too
    ckpt = full / "checkpoints" / f"step-{resume_step:07d}.pt"
    _, resumed = train_tiny(tmp_path, "resumed", text, checkpoint=str(ckpt))
    a, b = final_student(full), final_student(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_run_directory_uses_latest(tmp_path, tiny_model, tiny_data):
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 1, "save_steps": 2})
    _, full = train_tiny(tmp_path, "run", text)
    from process.checkpoint import resolve_checkpoint
    assert resolve_checkpoint(full).name == "step-0000006.pt"
    text2 = text.replace("epoch = 1", "epoch = 2")
    summary, _ = train_tiny(tmp_path, "run2", text2, checkpoint=str(full))
    assert summary["steps"] == 12


def test_gradient_accumulation_matches_big_batch(tmp_path, tiny_model_nodrop, tiny_data):
    big = tiny_config_text(tiny_model_nodrop, tiny_data, train={"epoch": 1, "batch_size": 8, "shuffle": "false"})
    small = tiny_config_text(tiny_model_nodrop, tiny_data, train={"epoch": 1, "batch_size": 4, "shuffle": "false",
                                                                  "gradient_accumulation_steps": 2})
    _, a = train_tiny(tmp_path, "big", big)
    _, b = train_tiny(tmp_path, "small", small)
    sa, sb = final_student(a), final_student(b)
    assert all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_random_init_student_bf16_and_tensorboard(tmp_path, tiny_model, tiny_data):
    text = tiny_config_text(tiny_model, tiny_data, "kd", student={"init_from": "config", "num_layers": 1, "hidden_size": 16,
                                                                   "num_attention_heads": 2},
                            distill={"teacher": str(tiny_model), "kd_loss": "mse"},
                            train={"epoch": 1, "precision": "bf16"}, output={"tensorboard": "true"})
    summary, logdir = train_tiny(tmp_path, "rand", text)
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(logdir / "student")
    assert (config.num_hidden_layers, config.hidden_size) == (1, 16)
    assert summary["params"] < summary["teacher_params"]
    assert any((logdir / "tensorboard").iterdir())


def test_test_cli_writes_results_json(tmp_path, tiny_model, tiny_data):
    import subprocess
    import sys
    from tests.helpers import REPO
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 1})
    _, logdir = train_tiny(tmp_path, "cls", text)
    proc = subprocess.run([sys.executable, str(REPO / "test.py"), "--config", str(tmp_path / "cls.config"),
                           "--checkpoint", str(logdir), "--logdir", str(tmp_path / "t")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "t" / "results.json").read_text())
    assert results["checkpoint"].endswith("best.pt") and results["metrics"]["examples"] == 16
    assert json.loads(proc.stdout.strip().splitlines()[-1])["metrics"] == results["metrics"]
    matrix = results["confusion_matrix"]["rows"]  # rows: true label, columns: predicted; every test example once
    assert len(matrix) == 2 and sum(map(sum, matrix)) == 16
    assert [row["support"] for row in results["per_class"]] == [sum(row) for row in matrix]
    assert sum(matrix[i][i] for i in range(2)) / 16 == pytest.approx(results["metrics"]["accuracy"])


def test_regression_from_jsonl_with_correlation_metric(tmp_path, tiny_model, tiny_data):
    rows = [{"a": "good film", "b": "great movie", "score": 4.5}, {"a": "bad plot", "b": "lovely story", "score": 0.5},
            {"a": "fun film", "b": "fine acting", "score": 4.0}, {"a": "dull", "b": "superb", "score": 1.0}] * 4
    (tmp_path / "sts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = tiny_config_text(tiny_model, tmp_path, data={
        "train_dataset_type": "jsonl", "valid_dataset_type": "jsonl", "test_dataset_type": "jsonl", "task": "STS-B",
        "train_file": "sts.jsonl", "valid_file": "sts.jsonl", "test_file": "sts.jsonl",
        "text_a_field": "a", "text_b_field": "b", "label_field": "score"}, train={"epoch": 1, "keep_last": 2, "save_steps": 1})
    summary, logdir = train_tiny(tmp_path, "sts", text, do_test=True)
    metrics = json.loads((logdir / "results.json").read_text())["metrics"]
    assert set(metrics) == {"examples", "pearson", "spearman", "corr", "loss"}
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(logdir / "student").num_labels == 1
    assert sorted(p.name for p in (logdir / "checkpoints").glob("step-*.pt")) == ["step-0000001.pt", "step-0000002.pt"]


def test_without_a_validation_split_the_final_student_is_exported(tmp_path, tiny_model, tiny_data):
    text = tiny_config_text(tiny_model, tiny_data, data={"valid_file": ""}, train={"epoch": 1})
    summary, logdir = train_tiny(tmp_path, "noval", text, do_test=True)
    best = torch.load(logdir / "checkpoints" / "best.pt", weights_only=True)
    assert best["state"]["global_step"] == 6 and summary["best_metric"] is None
    assert (logdir / "student" / "config.json").is_file() and (logdir / "results.json").is_file()


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path, tiny_model, tiny_data, monkeypatch, caplog, native):
    """Emulated bf16 ran a MiniLM step 11x slower than fp32 on an AVX2-only CPU: the user is told, once, at init."""
    import process.init_process as init_process
    from utils.logging import get_logger
    monkeypatch.setattr(init_process, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(get_logger(), "propagate", True)
    path = tmp_path / "bf16.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data, train={"epoch": 1, "precision": "bf16"}))
    init_all(load_config(path), DistInfo(), "train")
    # a set: after another test's train_run pytest can hold the same record twice
    warned = sorted({r.getMessage() for r in caplog.records if "without native bf16" in r.getMessage()})
    line = path.read_text().splitlines().index("precision = bf16") + 1
    assert warned == ([] if native else [f"{path}:{line}: [train] precision = bf16 on a CPU without native bf16 (no "
                                         "avx512_bf16/AMX): autocast emulates it, about 10x slower than fp32 "
                                         "(docs/PERFORMANCE.md); use fp32 here"])


@pytest.mark.parametrize("mode", ["min", "max"])
def test_metric_mode_selects_lowest_or_highest_valid_loss(tmp_path, tiny_model, tiny_data, mode):
    """metric = loss with metric_mode = min keeps the lowest-dev-loss checkpoint (an early-stopped teacher); max the
    highest. The earliest evaluation wins a tie, so the kept step is the first at the extreme."""
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 4, "metric": "loss", "metric_mode": mode})
    summary, logdir = train_tiny(tmp_path, mode, text)
    losses = [(r["loss"], r["step"]) for r in map(json.loads, (logdir / "metrics.jsonl").read_text().splitlines())
              if r.get("split") == "valid"]
    best = min(losses) if mode == "min" else min(losses, key=lambda x: (-x[0], x[1]))
    assert len(losses) == 4 and len({l for l, _ in losses}) > 1  # the losses differ, so the choice is visible
    assert (summary["best_metric"], summary["best_step"]) == best
    from process.checkpoint import load_checkpoint
    assert load_checkpoint(logdir / "checkpoints" / "best.pt")["state"]["best_step"] == best[1]


def test_max_steps_beyond_the_epochs_runs_further_epochs_to_the_end_of_its_schedule(tmp_path, tiny_model, tiny_data):
    """max_steps sizes the LR schedule, so it must also decide the epochs: with 1 epoch of 6 steps and max_steps 10
    the run used to stop at step 6 with its linear schedule 40% short of zero."""
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 1, "max_steps": 10, "logging_steps": 1,
                                                          "warmup_steps": 0, "learning_rate": 1e-3})
    summary, logdir = train_tiny(tmp_path, "run", text)  # 48 examples, batch 8: 6 steps an epoch
    train = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if '"split"' not in line]
    assert summary["steps"] == 10 and [r["step"] for r in train] == list(range(1, 11))
    assert [r["epoch"] for r in train] == [0] * 6 + [1] * 4
    assert train[4]["lr"] == pytest.approx(1e-3 * 5 / 10) and train[-1]["lr"] == 0


@pytest.mark.parametrize("max_steps, evaluated", [(8, [5, 6, 8]), (6, [5, 6])])  # mid-epoch; at the epoch's end
def test_a_run_that_max_steps_stops_mid_epoch_evaluates_its_last_step(tmp_path, tiny_model, tiny_data, max_steps,
                                                                       evaluated):
    text = tiny_config_text(tiny_model, tiny_data, train={"epoch": 2, "max_steps": max_steps, "eval_steps": 5})
    _, logdir = train_tiny(tmp_path, "run", text)  # 48 examples, batch 8: 6 steps an epoch
    lines = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line.get("split") == "valid"] == evaluated  # each step once


def test_test_cli_on_a_run_directory_keeps_the_training_records(tmp_path, tiny_model, tiny_data):
    """test.py --checkpoint RUN_DIR alone finds the run's own config.ini and its best student, and writes a new
    RUN_DIR/test-<time>/results.json: every file training wrote stays byte-identical. An explicit --logdir that
    already holds results is refused on one line."""
    import subprocess
    import sys
    from tests.helpers import REPO
    _, logdir = train_tiny(tmp_path, "cls", tiny_config_text(tiny_model, tiny_data, train={"epoch": 1}), do_test=True)
    before = {p: p.read_bytes() for p in logdir.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, str(REPO / "test.py"), "--checkpoint", str(logdir)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p: p.read_bytes() for p in before} == before
    [folder] = [p for p in logdir.iterdir() if p.name.startswith("test-")]
    results = json.loads((folder / "results.json").read_text())
    assert results["checkpoint"].endswith("best.pt")
    assert results["metrics"] == json.loads((logdir / "results.json").read_text())["metrics"]
    proc = subprocess.run([sys.executable, str(REPO / "test.py"), "--checkpoint", str(logdir), "--logdir", str(logdir)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: --logdir {logdir}: already holds a results.json; test.py writes a new folder by default "
        "(omit --logdir) and never over earlier results")
    assert {p: p.read_bytes() for p in before} == before


def test_exported_student_names_its_labels(tmp_path, tiny_model, tiny_data):
    """With [data] label_list, the exported HF config maps output ids to those names (id2label), so the student
    says what it predicts without the run's config."""
    from transformers import AutoConfig
    for split in ("train", "dev", "test"):
        rows = (tiny_data / f"{split}.tsv").read_text().splitlines()
        named = [rows[0]] + [line.rsplit("\t", 1)[0] + "\t" + ("neg", "pos")[int(line.rsplit("\t", 1)[1])] for line in rows[1:]]
        (tmp_path / f"{split}.tsv").write_text("\n".join(named) + "\n")
    text = tiny_config_text(tiny_model, tmp_path, data={"label_list": "neg, pos"}, train={"epoch": 1})
    _, logdir = train_tiny(tmp_path, "named", text)
    config = AutoConfig.from_pretrained(logdir / "student")
    assert config.id2label == {0: "neg", 1: "pos"} and config.label2id == {"neg": 0, "pos": 1}
