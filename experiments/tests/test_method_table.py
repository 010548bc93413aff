"""experiments/method_table.py: the RESULTS rows pair each method with its twin and compute kept share and gain."""
import json
import subprocess
import sys

from tests.helpers import REPO


def write_run(path, metrics, params=100, latency=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"metrics": metrics, "params": params, "latency_ms": latency}))


def write_seed_runs(root, accuracies):
    """{run: (seed 1's accuracy, seed 2's, ...)} -> root/s<SEED>/T/<run>/results.json, 100 parameters each."""
    for run, per_seed in accuracies.items():
        for seed, accuracy in enumerate(per_seed, start=1):
            write_run(root / f"s{seed}" / "T" / run, {"accuracy": accuracy}, 100)


def method_table(*args):
    """experiments/method_table.py's output for these arguments."""
    return subprocess.run([sys.executable, str(REPO / "experiments" / "method_table.py"), *args],
                          capture_output=True, text=True, check=True).stdout


def rows_of(out):
    """{row label: the whole markdown row}."""
    return {line.split(" | ")[0].strip("| "): line for line in out.splitlines()}


def test_rows_gain_and_kept_share(tmp_path):
    root = tmp_path / "cmp"
    write_run(tmp_path / "teacher", {"accuracy": 0.80}, 1000, 10.0)
    write_run(root / "T" / "kd", {"accuracy": 0.76}, 100, 3.0)
    write_run(root / "T" / "baseline", {"accuracy": 0.70}, 100, 3.1)
    write_run(root / "T" / "theseus" / "phase2", {"accuracy": 0.72}, 100)
    write_run(root / "T" / "theseus_baseline", {"accuracy": 0.73}, 100)
    write_run(root / "latency" / "T" / "kd", {"accuracy": 0.76}, 100, 2.5)  # same shape as theseus: serves both
    out = method_table("T", "--root", str(root), "--teacher", str(tmp_path / "teacher"))
    rows = rows_of(out)
    assert rows["kd (kd.config)"].endswith("| 76.00 | 95.0% | 2.5 | 70.00 | first 2 pretrained layers, labels only | +6.00 |")
    assert "| 72.00 | 90.0% | 2.5 | 73.00 |" in rows["theseus (theseus_pipeline.config)"]
    assert rows["theseus (theseus_pipeline.config)"].endswith("| -1.00 |")
    assert "missing" in rows["pkd (pkd.config)"]


def test_seeded_root_gives_mean_std_and_wins(tmp_path):
    root = tmp_path / "full"  # experiments/compare_full.py layout: s<SEED>/<TASK>/<run>, teachers/<TASK>
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    for seed, kd, base in ((1, 0.80, 0.78), (2, 0.84, 0.79), (3, 0.79, 0.80)):
        write_run(root / f"s{seed}" / "T" / "kd", {"accuracy": kd}, 100)
        write_run(root / f"s{seed}" / "T" / "baseline", {"accuracy": base}, 100)
    write_run(root / "s1" / "T" / "pkd", {"accuracy": 0.81}, 100)  # its twin is missing: no row
    write_run(tmp_path / "lat" / "T" / "kd", {"accuracy": 0.5}, 100, 4.0)
    out = method_table("T", "--root", str(root), "--latency_root", str(tmp_path / "lat"))
    rows = rows_of(out)
    # kd: mean 81.00, sample std of (80, 84, 79) = sqrt(((-1)^2 + 3^2 + (-2)^2) / 2) = sqrt(7) = 2.65;
    # twin mean 79.00, std 1.00; kept 81/90 = 90.0%; gain +2.00; kd beats its twin in seeds 1 and 2
    assert rows["kd (kd.config)"] == ("| kd (kd.config) | 100 | 81.00 +- 2.65 | 90.0% | 4.0 | 79.00 +- 1.00 | "
                                      "first 2 pretrained layers, labels only | +2.00 | 2/3 |")
    assert rows["teacher (teacher.config)"].startswith("| teacher (teacher.config) | 1,000 | 90.00 (90.00) |")
    assert "missing" in rows["pkd (pkd.config)"]


def test_transfer_set_rows_appear_when_those_runs_exist(tmp_path):
    root = tmp_path / "full"
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    for name, acc in (("kd", 0.80), ("baseline", 0.78), ("kd_tang", 0.83), ("baseline_tang", 0.79)):
        write_run(root / "s1" / "T" / name, {"accuracy": acc}, 100)
    out = method_table("T", "--root", str(root))
    rows = rows_of(out)
    assert rows["kd on the Tang transfer set (kd.config)"].endswith("| 79.00 +- 0.00 | first 2 pretrained layers, "
                                                                   "labels only, same transfer set | +4.00 | 1/1 |")
    assert not any(k.startswith("pkd on the Tang") for k in rows)


def test_unlabeled_transfer_rows_and_skip_missing(tmp_path):
    root = tmp_path / "full"
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    for seed, kd, base in ((1, 0.80, 0.78), (2, 0.79, 0.80)):
        write_run(root / f"s{seed}" / "T" / "kd_unlab", {"accuracy": kd}, 100)
        write_run(root / f"s{seed}" / "T" / "baseline_unlab", {"accuracy": base}, 100)
    out = method_table("T", "--root", str(root), "--skip_missing")
    rows = rows_of(out)
    # mean 79.50 vs 79.00; sample std of (80, 79) = sqrt(0.5) = 0.71; kd wins in seed 1 only
    assert rows["kd + unlabeled transfer set (kd.config)"] == (
        "| kd + unlabeled transfer set (kd.config) | 100 | 79.50 +- 0.71 | 88.3% | - | 79.00 +- 1.41 | "
        "first 2 pretrained layers, labels only, labeled rows for the same steps | +0.50 | 1/2 |")
    assert len(out.splitlines()) == 4  # header, rule, teacher, kd: no "missing" rows


def test_a_twin_run_with_other_layers_is_described_with_its_own_count(tmp_path):
    root = tmp_path / "full"  # Theseus at compress_ratio 2: 3-layer successor, twin run with --set student.num_layers=3
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    write_run(root / "s1" / "T" / "theseus" / "phase2", {"accuracy": 0.80}, 300)
    write_run(root / "s1" / "T" / "theseus_baseline", {"accuracy": 0.79}, 300)
    (root / "s1" / "T" / "theseus_baseline" / "config.ini").write_text(
        "[student]\n# from --set student.num_layers\nnum_layers = 3\n")
    write_run(root / "s1" / "T" / "kd", {"accuracy": 0.80}, 100)
    write_run(root / "s1" / "T" / "baseline", {"accuracy": 0.78}, 100)
    (root / "s1" / "T" / "baseline" / "config.ini").write_text("[student]\nnum_layers = 2\n")
    out = method_table("T", "--root", str(root), "--skip_missing")
    rows = rows_of(out)
    assert "| teacher's first 3 layers, labels only | +1.00 | 1/1 |" in rows["theseus (theseus_pipeline.config)"]
    assert "| first 2 pretrained layers, labels only | +2.00 | 1/1 |" in rows["kd (kd.config)"]


def test_per_seed_prints_each_runs_best_and_last_evaluation(tmp_path):
    root = tmp_path / "full"
    write_run(root / "teachers" / "T", {"acc_and_f1": 0.80}, 1000)
    lines = [{"step": 100, "split": "valid", "acc_and_f1": 0.70}, {"step": 150, "split": "train", "loss": 0.5},
             {"step": 200, "split": "valid", "acc_and_f1": 0.75}, {"step": 300, "split": "valid", "acc_and_f1": 0.75},
             {"step": 345, "split": "valid", "acc_and_f1": 0.72}]
    for seed in (1, 2):
        (root / f"s{seed}" / "T" / "twin").mkdir(parents=True)
    (root / "s1" / "T" / "twin" / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (root / "s2" / "T" / "twin" / "metrics.jsonl").write_text(json.dumps(lines[0]) + "\n")
    out = method_table("T", "--root", str(root), "--per_seed", "twin", "phase1")
    # best 75.00 first reached at step 200 (the tie at 300 does not replace it); last evaluation 72.00 at 345
    assert out.splitlines()[2:] == ["| 1 | 75.00 (200), 72.00 (345) | - |", "| 2 | 70.00 (100), 70.00 (100) | - |"]


def test_unmeasured_latency_prints_a_dash_not_none(tmp_path):
    root = tmp_path / "full"  # results.json holds "latency_ms": null when a run measured none (latency_batches=0)
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    write_run(root / "s1" / "T" / "kd", {"accuracy": 0.81}, 100)
    write_run(root / "s1" / "T" / "baseline", {"accuracy": 0.80}, 100)
    out = method_table("T", "--root", str(root), "--skip_missing")
    rows = rows_of(out)
    assert rows["teacher (teacher.config)"] == "| teacher (teacher.config) | 1,000 | 90.00 (90.00) | 100% | - | - | - | - | - |"
    assert "| 90.0% | - | 80.00 +- 0.00 |" in rows["kd (kd.config)"]
    assert "None" not in out


def test_per_seed_reads_the_ablation_layout_and_stage_directories(tmp_path):
    root = tmp_path / "abl" / "T"  # experiments/tinybert_ablation.sh: ROOT/s<SEED>/<variant>[/prediction], no task level
    write_run(tmp_path / "teacher", {"acc_and_f1": 0.80}, 1000)
    for seed, scores in ((1, (0.70, 0.76, 0.74)), (2, (0.71, 0.69, 0.70))):
        stage = root / f"s{seed}" / "tr_aug" / "prediction"
        stage.mkdir(parents=True)
        stage.joinpath("metrics.jsonl").write_text("".join(
            json.dumps({"step": 50 * (i + 1), "split": "valid", "acc_and_f1": v}) + "\n" for i, v in enumerate(scores)))
    (root / "notes").mkdir()  # not a seed directory: no row
    out = method_table("T", "--root", str(root), "--teacher", str(tmp_path / "teacher"),
                       "--per_seed", "tr_aug/prediction", "twin")
    assert out.splitlines()[2:] == ["| 1 | 76.00 (100), 74.00 (150) | - |", "| 2 | 71.00 (50), 70.00 (150) | - |"]


def test_tinybert_is_also_set_beside_the_student_that_never_met_a_teacher(tmp_path):
    root = tmp_path / "full"  # its general-distilled twin isolates the task stage; `baseline` is the undistilled start
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    write_seed_runs(root, {"tinybert": (0.80, 0.78), "tinybert_baseline": (0.81, 0.80), "baseline": (0.77, 0.79)})
    out = method_table("T", "--root", str(root), "--skip_missing")
    rows = rows_of(out)
    # tinybert 79.00 against 80.50 (general-distilled twin, 0/2) and against 78.00 (undistilled twin; seed 1 only)
    assert rows["tinybert (tinybert.config)"].endswith("| same general-distilled init, labels only | -1.50 | 0/2 |")
    assert rows["tinybert vs the undistilled start (tinybert.config)"].endswith(
        "| 78.00 +- 1.41 | first 2 pretrained layers, no general distillation, labels only | +1.00 | 1/2 |")


def test_pkd_and_theseus_are_also_set_beside_the_pretrained_layers(tmp_path):
    root = tmp_path / "full"  # their students start from the fine-tuned teacher's layers, as their first twins do
    write_run(root / "teachers" / "T", {"accuracy": 0.90}, 1000)
    write_seed_runs(root, {"pkd": (0.80, 0.82), "pkd_baseline": (0.81, 0.80), "baseline": (0.78, 0.79),
                           "theseus": (0.84, 0.85), "theseus_baseline": (0.83, 0.82),
                           "theseus_pretrained_baseline": (0.80, 0.84)})
    out = method_table("T", "--root", str(root), "--skip_missing")
    rows = rows_of(out)
    # pkd 81.00 against its 2-layer twins: the teacher's layers 80.50, the pretrained layers 78.50
    assert rows["pkd (pkd.config)"].endswith("| teacher's first 2 layers, labels only | +0.50 | 1/2 |")
    assert rows["pkd vs the undistilled start (pkd.config)"].endswith(
        "| 78.50 +- 0.71 | first 2 pretrained layers, labels only | +2.50 | 2/2 |")
    # theseus (3-layer successor) 84.50 against its 3-layer twins: the teacher's layers 82.50, the pretrained ones 82.00
    assert rows["theseus (theseus_pipeline.config)"].endswith("| teacher's first 3 layers, labels only | +2.00 | 2/2 |")
    assert rows["theseus vs the undistilled start (theseus_pipeline.config)"].endswith(
        "| 82.00 +- 2.83 | first 3 pretrained layers, labels only | +2.50 | 2/2 |")