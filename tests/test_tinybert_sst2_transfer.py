"""tools/tinybert_sst2_transfer.sh: TinyBERT's SST-2 stages on Tang's set and its two twins, one seed per call."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "tinybert_sst2_transfer.sh"


def run_script(tmp_path, *jobs):
    """Run the script in tmp_path with a stand-in `python` that records its call and creates the run directory."""
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/usr/bin/env bash\necho "$@" >> "$CALLS"\n'
                    'while [[ $# -gt 0 ]]; do [[ $1 == --logdir ]] && mkdir -p "$2"; shift; done\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake.parent}:{os.environ['PATH']}", CALLS=str(tmp_path / "calls"), ROOT="R",
               GENERAL="G")
    result = subprocess.run(["bash", str(SCRIPT), "7", *jobs], cwd=tmp_path, env=env, capture_output=True, text=True)
    calls_file = tmp_path / "calls"
    lines = calls_file.read_text().splitlines() if calls_file.exists() else []
    return [(line.split("--logdir ")[1].split()[0], line) for line in lines], result


def test_all_jobs_share_the_step_budget_and_chain_the_intermediate_student(tmp_path):
    calls, result = run_script(tmp_path)
    assert result.returncode == 0, result.stderr
    assert [d for d, _ in calls] == ["R/s7/SST-2/tinybert_tang_intermediate", "R/s7/SST-2/tinybert_tang",
                                     "R/s7/SST-2/tinybert_baseline", "R/s7/SST-2/baseline"]
    inter, pred, twin, base = (line for _, line in calls)
    assert "tinybert_intermediate.config" in inter and "--do_test" not in inter
    assert all(a in inter for a in ("data.use_aug=true", "data.aug_file=R/aug/SST-2/tang.tsv", "train.max_steps=2105",
                                    "model.pretrained=G", "distill.teacher=R/teachers/SST-2", "--seed 7"))
    assert "model.pretrained=R/s7/SST-2/tinybert_tang_intermediate/student" in pred and "data.use_aug=false" in pred
    assert "train.epoch=2" in twin and "model.pretrained=G" in twin and "distill.teacher" not in twin
    assert "baseline.config" in base and "train.epoch=2" in base and "model.pretrained" not in base
    assert os.readlink(tmp_path / "R/s7/SST-2/tinybert") == "tinybert_tang"


def test_finished_jobs_are_skipped_and_a_bad_name_stops_with_it(tmp_path):
    run_script(tmp_path, "twin")
    calls, result = run_script(tmp_path, "twin", "base", "bogus", "pred")
    assert [d for d, _ in calls] == ["R/s7/SST-2/tinybert_baseline", "R/s7/SST-2/baseline"]  # twin ran once, first call
    assert result.returncode == 2 and "unknown job 'bogus'" in result.stderr
