"""experiments/compare_full.py: the job graph (twins beside methods, transfer-set copies) and the runner (order, skips)."""
import subprocess
import sys

import pytest

from experiments import compare_full
from tests.helpers import REPO


def test_every_method_has_its_twin_and_two_stage_methods_split_the_epochs(tmp_path):
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "MRPC", [7], 6, 4, ["kd"])}
    assert {"s7_MRPC_kd", "s7_MRPC_baseline", "s7_MRPC_kd_tang", "s7_MRPC_baseline_tang"} <= set(jobs)
    assert not any(name.startswith("s7_MRPC_pkd_tang") for name in jobs)  # only the listed methods are copied
    assert "train.epoch=6" in jobs["s7_MRPC_kd"].cmd and "train.epoch=3" in jobs["s7_MRPC_theseus"].cmd
    assert jobs["s7_MRPC_theseus"].deps == ["s7_MRPC_theseus_phase1"]
    tang = jobs["s7_MRPC_baseline_tang"]
    assert tang.deps == ["MRPC_aug"] and f"data.aug_file={tmp_path / 'aug' / 'MRPC' / 'tang.tsv'}" in tang.cmd
    assert "--do_test" not in jobs["s7_MRPC_theseus_phase1"].cmd and "--seed" in jobs["s7_MRPC_kd"].cmd


def test_stage_steps_replace_the_half_epochs_of_two_stage_methods_only(tmp_path):
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "MRPC", [7], 1, 4, ["kd", "tinybert"], stage_steps=474)}
    for name in ("theseus_phase1", "theseus", "tinybert_intermediate_tang", "tinybert_tang"):
        cmd = jobs[f"s7_MRPC_{name}"].cmd
        assert "train.max_steps=474" in cmd and not any(c.startswith("train.epoch=") for c in cmd), name
    for name in ("kd_tang", "baseline_tang", "tinybert_baseline_tang", "theseus_baseline", "theseus_pretrained_baseline",
                 "pkd_baseline"):
        cmd = jobs[f"s7_MRPC_{name}"].cmd
        assert "train.epoch=1" in cmd and not any(c.startswith("train.max_steps") for c in cmd), name


def test_runner_skips_dependants_of_a_failure_and_marks_done(tmp_path):
    py = sys.executable
    jobs = [compare_full.Job("a", [py, "-c", "pass"], tmp_path / "a"),
            compare_full.Job("bad", [py, "-c", "raise SystemExit(3)"], tmp_path / "bad"),
            compare_full.Job("after_a", [py, "-c", "pass"], tmp_path / "c", ["a"]),
            compare_full.Job("after_bad", [py, "-c", "pass"], tmp_path / "d", ["bad"]),
            compare_full.Job("after_after_bad", [py, "-c", "pass"], tmp_path / "e", ["after_bad"])]
    failed = compare_full.run_graph(jobs, tmp_path / "root", 2, None)
    assert failed == {"bad", "after_bad", "after_after_bad"}
    assert sorted(p.name for p in (tmp_path / "root" / "done").iterdir()) == ["a", "after_a"]
    again = compare_full.run_graph(jobs[:1], tmp_path / "root", 2, None)  # finished jobs are not run again
    assert again == set() and "$" in (tmp_path / "root" / "logs" / "a.log").read_text()
    assert (tmp_path / "root" / "logs" / "a.log").read_text().count("$ ") == 1


def test_prune_done_keeps_best_and_the_export_and_only_for_finished_training_jobs(tmp_path):
    py = sys.executable
    for run in ("train", "failed", "latency"):
        (tmp_path / run / "checkpoints").mkdir(parents=True)
        (tmp_path / run / "student").mkdir()
        for name in ("step-0000010.pt", "step-0000020.pt", "step-0000010.pt.json", "best.pt"):
            (tmp_path / run / "checkpoints" / name).write_text("x")
    jobs = [compare_full.Job("train", [py, "-c", "pass"], tmp_path / "train"),
            compare_full.Job("failed", [py, "-c", "raise SystemExit(1)"], tmp_path / "failed"),
            compare_full.Job("latency", [py, "-c", "pass"], tmp_path / "latency", resumable=False)]
    compare_full.run_graph(jobs, tmp_path / "root", 1, None, prune_done=True)
    kept = {run: sorted(p.name for p in (tmp_path / run / "checkpoints").iterdir()) for run in ("train", "failed", "latency")}
    assert kept["train"] == ["best.pt"] and (tmp_path / "train" / "student").is_dir()
    everything = ["best.pt", "step-0000010.pt", "step-0000010.pt.json", "step-0000020.pt"]
    assert kept["failed"] == everything  # a failed run resumes from them
    assert kept["latency"] == everything  # not a training job of its own
    (tmp_path / "root" / "done" / "train").unlink()
    (tmp_path / "train" / "checkpoints" / "step-0000030.pt").write_text("x")
    compare_full.run_graph(jobs[:1], tmp_path / "root", 1, None)  # without the flag nothing is deleted
    assert sorted(p.name for p in (tmp_path / "train" / "checkpoints").iterdir()) == ["best.pt", "step-0000030.pt"]


def test_unlabeled_variants_give_each_twin_the_methods_step_count(tmp_path):
    from init.config import load_config
    from utils.paths import data_file
    labeled_file = data_file(load_config(REPO / "config" / "glue" / "MRPC" / "kd.config"), "train")
    if not labeled_file.is_file():
        pytest.skip(f"needs the MRPC training set ({labeled_file})")
    transfer = tmp_path / "transfer.tsv"
    transfer.write_text("text_a\ttext_b\n" + "a\tb\n" * 1000)
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "MRPC", [7], 2, 4, unlabeled=["kd", "tinybert"],
                                                      transfer_file=transfer)}
    steps = 2 * -(-(3668 + 1000) // 32)  # 2 epochs of ceil(4668 / 32) = 146 batches
    kd = jobs["s7_MRPC_kd_unlab"].cmd
    assert f"data.transfer_file={transfer}" in kd and "distill.hard_weight=0" in kd and "train.epoch=2" in kd
    twin = jobs["s7_MRPC_baseline_unlab"].cmd
    assert f"train.max_steps={steps}" in twin and "train.epoch=3" in twin  # 292 steps need 3 epochs of 115
    assert not any("transfer_file" in c for c in twin) and jobs["s7_MRPC_baseline_unlab"].deps == []
    for stage in ("tinybert_intermediate_unlab", "tinybert_unlab"):
        assert f"train.max_steps={steps // 2}" in jobs[f"s7_MRPC_{stage}"].cmd
    assert jobs["s7_MRPC_tinybert_unlab"].deps == ["s7_MRPC_tinybert_intermediate_unlab", "MRPC_teacher"]
    assert f"train.max_steps={steps}" in jobs["s7_MRPC_tinybert_baseline_unlab"].cmd
    for name in ("tinybert_unlab", "tinybert_baseline_unlab"):  # the same evaluation schedule for both
        assert "train.eval_steps=100" in jobs[f"s7_MRPC_{name}"].cmd
    assert "--do_test" not in jobs["s7_MRPC_tinybert_intermediate_unlab"].cmd


def test_override_reaches_only_the_named_run_and_comes_last(tmp_path):
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "SST-2", [1, 2], 1, 4, ["kd"],
                                                       overrides={"kd_tang": ["distill.hard_weight=0"]})}
    for seed in (1, 2):
        cmd = jobs[f"s{seed}_SST-2_kd_tang"].cmd
        assert cmd[-2:] == ["--set", "distill.hard_weight=0"]  # after the run's own sets, so train.py applies it last
    assert not any("distill.hard_weight=0" in jobs[f"s1_SST-2_{run}"].cmd for run in ("kd", "baseline_tang", "pkd"))


def test_the_teacher_takes_overrides_and_misspelt_names_stop_with_one_line(tmp_path):
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "MRPC", [1], 6, 4,
                                                      overrides={"teacher": ["train.metric=loss", "train.metric_mode=min"]})}
    assert jobs["MRPC_teacher"].cmd[-4:] == ["--set", "train.metric=loss", "--set", "train.metric_mode=min"]
    assert not any("train.metric=loss" in j.cmd for name, j in jobs.items() if name != "MRPC_teacher")
    base = [sys.executable, str(REPO / "experiments" / "compare_full.py"), "--root", str(tmp_path), "--tasks", "MRPC",
            "--seeds", "1", "--epochs", "MRPC=6", "--dry"]
    for extra, message in ((["--override", "theseus_basline:student.num_layers=2"],
                            "--override theseus_basline:student.num_layers=2: no run 'theseus_basline' in this graph"),
                           (["--only", "s1_MRPC_kdd"], "--only s1_MRPC_kdd: no such job")):
        done = subprocess.run(base + extra, capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1] and "Traceback" not in done.stderr


def test_general_steps_take_a_default_and_per_stage_counts():
    assert compare_full.general_steps(["2000"]) == dict.fromkeys(compare_full.GENERAL_STAGES, 2000)
    assert compare_full.general_steps(["2000", "distilbert=3125", "4000"]) == {
        "mlm_head": 4000, "distilbert": 3125, "minilmv2": 4000, "tinybert": 4000}  # the last bare count is the default
    for bad, message in (("distilbrt=3125", "no general stage 'distilbrt'"), ("tinybert=0", "a step count >= 1")):
        with pytest.raises(ValueError, match=message):
            compare_full.general_steps(["2000", bad])


def test_distilbert_general_stage_reads_the_mlm_head_fitted_before_it(tmp_path):
    jobs = {j.name: j for j in compare_full.general_jobs(tmp_path, compare_full.general_steps(["2000", "distilbert=3125"]))}
    head, student = jobs["general_mlm_head"], jobs["general_distilbert"]
    assert "train.max_steps=2000" in head.cmd and head.logdir == tmp_path / "general" / "mlm_head"
    assert student.deps == ["general_mlm_head"] and "train.max_steps=3125" in student.cmd
    assert f"distill.teacher={tmp_path / 'general' / 'mlm_head' / 'student'}" in student.cmd


def test_tinybert_on_the_transfer_set_takes_both_twins_along(tmp_path):
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "SST-2", [2], 2, 4, ["tinybert"], stage_steps=2105)}
    assert {"s2_SST-2_tinybert_baseline_tang", "s2_SST-2_baseline_tang"} <= set(jobs) and "s2_SST-2_kd_tang" not in jobs
    aug = f"data.aug_file={tmp_path / 'aug' / 'SST-2' / 'tang.tsv'}"
    assert aug in jobs["s2_SST-2_baseline_tang"].cmd and aug in jobs["s2_SST-2_tinybert_tang"].cmd
    assert jobs["s2_SST-2_tinybert_tang"].deps == ["s2_SST-2_tinybert_intermediate_tang", "SST-2_aug"]


def test_task_stage_kd_has_the_general_distilled_student_on_labels_as_a_twin(tmp_path):
    """DistilBERT's and MiniLMv2's task stages are KD: their twin starts from the same general-distilled export and
    trains on labels only with the same epochs, so the task KD's gain is its own row."""
    from init.config import load_config
    jobs = {j.name: j for j in compare_full.task_jobs(tmp_path, "MRPC", [7], 6, 4)}
    for method in ("distilbert", "minilmv2"):
        kd, twin = jobs[f"s7_MRPC_{method}"], jobs[f"s7_MRPC_{method}_general_ft"]
        export = f"model.pretrained={tmp_path / 'general' / method / 'student'}"
        assert export in kd.cmd and export in twin.cmd and "train.epoch=6" in twin.cmd
        assert twin.deps == [f"general_{method}"] and not any(c.startswith("distill.teacher") for c in twin.cmd)
        config = load_config(REPO / "config" / "glue" / "MRPC" / f"{method}_general_ft.config")
        assert (config.get("model", "model_name"), config.get("student", "num_layers")) == ("bert_cls", 0)
        assert f"{method}_general_ft" in compare_full.TWINS[method]
