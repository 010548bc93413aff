"""experiments/results_table.py: --help prints usage, and the table labels results.json's metrics as test metrics."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "results_table.py"


def test_help_prints_usage():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:") and "RUN_DIR" in proc.stdout


def test_table_of_two_runs(tmp_path):
    for name, acc, steps in (("teacher", 0.9, 10), ("kd", 0.81, 4)):
        run = tmp_path / name
        run.mkdir()
        (run / "results.json").write_text(json.dumps({"metrics": {"examples": 8, "accuracy": acc, "loss": 0.3},
                                                      "params": 100, "latency_ms": 1.5}))
        (run / "train_summary.json").write_text(json.dumps({"steps": steps}))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "teacher"), str(tmp_path / "kd")],
                          capture_output=True, text=True, timeout=60)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].startswith("| run | test metrics (%) |")
    assert lines[3] == "| kd | accuracy 81.00 | 90.0% | 100 | 1.5 | 4 |"
