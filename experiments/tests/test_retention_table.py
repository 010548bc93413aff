"""experiments/retention_table.py: speed-up, mean ± sample std, retention and gain over the twin, computed by hand
from results.json files the test writes; the picture is written; bad arguments end in one line, exit 2."""
import json
import subprocess
import sys

import pytest

from experiments.retention_table import main
from tests.helpers import REPO


def write_run(path, metrics, params, latency):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"metrics": {"examples": 100, **metrics}, "params": params,
                                                   "latency_ms": latency}))
    return str(path)


@pytest.fixture
def runs(tmp_path):
    """A teacher (mcc 0.50, 10 ms), kd on 2 seeds (0.45, 0.40; 2 and 3 ms), its twin on 3 (0.41, 0.38, 0.35)."""
    teacher = write_run(tmp_path / "teacher", {"mcc": 0.50, "accuracy": 0.80}, 1000, 10.0)
    kd = [write_run(tmp_path / f"kd_s{i}", {"mcc": m, "accuracy": a}, 100, ms)
          for i, (m, a, ms) in enumerate([(0.45, 0.76, 2.0), (0.40, 0.72, 3.0)])]
    twin = [write_run(tmp_path / f"twin_s{i}", {"mcc": m, "accuracy": 0.70}, 100, ms)
            for i, (m, ms) in enumerate([(0.41, 2.0), (0.38, 5.0), (0.35, 4.0)])]
    return ["--teacher", teacher, "--row", "kd=" + ",".join(kd), "--row", "twin=" + ",".join(twin)]


def rows_of(out):
    return {line.split(" | ")[0].strip("| "): line for line in out.splitlines()}


def test_numbers_by_hand(runs, capsys):
    main(runs + ["--twin", "kd=twin", "--paper", "kd=DistilBERT: 97% of BERT-base at 1.6x"])
    rows = rows_of(capsys.readouterr().out)
    assert "mcc x100, mean ± std" in rows["method"]  # the default metric: the first the teacher's results.json names
    assert rows["teacher"] == "| teacher | 1,000 | 10.00 | 1.00x | 50.00 | 100.0% | 1 | - |  |"
    # kd: 45, 40 -> mean 42.50, std sqrt(2 * 2.5^2 / 1) = 3.54; retained (0.90 + 0.80) / 2; median 2.5 ms -> 10 / 2.5
    assert rows["kd"] == ("| kd | 100 | 2.50 | 4.00x | 42.50 ± 3.54 | 85.0% | 2 | +4.50 vs twin | "
                          "DistilBERT: 97% of BERT-base at 1.6x |")
    # twin: 41, 38, 35 -> 38.00 ± sqrt((9 + 0 + 9) / 2) = 3.00; (0.82 + 0.76 + 0.70) / 3; median of 2, 5, 4 ms = 4
    assert rows["twin"] == "| twin | 100 | 4.00 | 2.50x | 38.00 ± 3.00 | 76.0% | 3 | - |  |"


def test_seeds_ahead_pair_the_dirs_in_order(tmp_path, capsys):
    """kd 45, 40, 39 against twin 41, 42, 39: ahead in the first seed only (a tie is not ahead)."""
    teacher = write_run(tmp_path / "teacher", {"mcc": 0.50}, 1000, 10.0)
    kd = [write_run(tmp_path / f"kd_s{i}", {"mcc": m}, 100, 2.0) for i, m in enumerate([0.45, 0.40, 0.39])]
    twin = [write_run(tmp_path / f"twin_s{i}", {"mcc": m}, 100, 2.0) for i, m in enumerate([0.41, 0.42, 0.39])]
    main(["--teacher", teacher, "--row", "kd=" + ",".join(kd), "--row", "twin=" + ",".join(twin), "--twin", "kd=twin"])
    assert "| +0.67 vs twin, ahead 1/3 |" in rows_of(capsys.readouterr().out)["kd"]  # (124 - 122) / 3


def test_named_metric(runs, capsys):
    main(runs + ["--metric", "accuracy"])
    kd = rows_of(capsys.readouterr().out)["kd"]
    assert "| 74.00 ± 2.83 | 92.5% |" in kd  # 76, 72: std sqrt(8); (0.95 + 0.90) / 2


def test_default_is_the_tasks_metric_not_the_selecting_one(runs, tmp_path, capsys):
    """A teacher picked by its dev loss ([train] metric = loss) is still compared on CoLA's mcc, not on accuracy,
    the first score its results.json names."""
    write_run(tmp_path / "teacher", {"accuracy": 0.80, "mcc": 0.50, "loss": 0.30}, 1000, 10.0)
    (tmp_path / "teacher" / "config.ini").write_text("[model]\nmodel_name = bert_cls\n[data]\ntask = CoLA\n"
                                                     "[train]\nmetric = loss\nmetric_mode = min\n")
    main(runs)
    rows = rows_of(capsys.readouterr().out)
    assert "mcc x100" in rows["method"] and "| 42.50 ± 3.54 | 85.0% |" in rows["kd"]


def test_plot_is_written(runs, tmp_path, capsys):
    out = tmp_path / "retention.png"
    main(runs + ["--plot", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.glob(".retention.png*")] == []  # the temp file was renamed


@pytest.mark.parametrize("extra, message", [
    (["--row", "late={missing}"], "--row {missing}: no such folder"),
    (["--row", "late={empty}"], "--row {empty}: no readable results.json with metrics in it"),
    (["--metric", "f1"], "--teacher {teacher}: results.json has no metric 'f1' (it has: accuracy, examples, mcc)"),
    (["--twin", "kd=nobody"], "--twin kd=nobody: no --row is labelled nobody"),
])
def test_bad_arguments_are_one_line_exit_2(runs, tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "teacher": tmp_path / "teacher"}
    with pytest.raises(SystemExit) as info:
        main(runs + [item.format(**names) for item in extra])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err == f"retention_table: {message.format(**names)}\n"


def test_runs_as_a_script(runs):
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "retention_table.py"), *runs],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and "| kd | 100 | 2.50 | 4.00x |" in proc.stdout, proc.stderr
