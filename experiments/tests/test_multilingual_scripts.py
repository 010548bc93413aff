"""The multilingual experiment scripts: experiments/multilingual_table.py (the results table from run directories),
experiments/vocab_coverage.py and experiments/multilingual_cpu.sh (the stages it chains, with a stand-in python)."""
import json

from tests.helpers import REPO


def test_multilingual_table_reads_run_dirs(tmp_path):
    import subprocess
    import sys
    root = tmp_path / "minilm"
    metrics = {"deu_src2tgt": 0.9, "deu_tgt2src": 0.8, "fra_src2tgt": 0.7, "fra_tgt2src": 0.7, "ces_src2tgt": 0.5,
               "ces_tgt2src": 0.3, "STS-B-dev_spearman": 0.8123}
    (root / "rec_bottle_mcl").mkdir(parents=True)
    (root / "rec_bottle_mcl" / "results.json").write_text(json.dumps({"metrics": metrics, "params": 9345792}))
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "multilingual_table.py"), "--root", str(root)],
                         capture_output=True, text=True, check=True).stdout
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines()}
    assert rows["rec_bottle_mcl (stage 4, MCL)"] == ("| rec_bottle_mcl (stage 4, MCL) | 9,345,792 | 85.0 (90.0 / 80.0) | "
                                                     "70.0 (70.0 / 70.0) | 40.0 (50.0 / 30.0) | 65.0 | 81.2 |")
    assert "missing" in rows["mul_mse (mse.config; stage 1 of the rows below)"]
    extra = subprocess.run([sys.executable, str(REPO / "experiments" / "multilingual_table.py"), "--root", str(root), "--extra",
                            f"MCL, 3 epochs (x=1)={root / 'rec_bottle_mcl'}"], capture_output=True, text=True, check=True)
    last = extra.stdout.strip().splitlines()[-1]
    assert last == rows["rec_bottle_mcl (stage 4, MCL)"].replace("rec_bottle_mcl (stage 4, MCL)", "MCL, 3 epochs (x=1)")
    bad = subprocess.run([sys.executable, str(REPO / "experiments" / "multilingual_table.py"), "--extra", "no-equals-sign"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--extra 'no-equals-sign': expected LABEL=RUN_DIR" in bad.stderr


def test_vocab_coverage_counts_tokens_and_types(tmp_path):
    import subprocess
    import sys
    from experiments.vocab_coverage import coverage, words
    (tmp_path / "train.txt").write_text("Ein Hund läuft.\nein Mann\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("Der Hund, der Hund!\nEIN Ball\n", encoding="utf-8")
    test = words(tmp_path / "test.txt")
    assert test == ["der", "hund", "der", "hund", "ein", "ball"]
    # tokens: hund x2 + ein = 3 of 6; types: hund, ein = 2 of {der, hund, ein, ball}
    assert coverage(words(tmp_path / "train.txt"), test) == (50.0, 50.0)
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "vocab_coverage.py"), str(tmp_path / "train.txt"),
                          str(tmp_path / "test.txt")], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith(": 50.0% of word tokens, 50.0% of word types occur in " + str(tmp_path / "train.txt"))


def test_multilingual_table_valid_reads_the_selected_evaluation(tmp_path):
    import subprocess
    import sys
    run = tmp_path / "minilm" / "mse"
    run.mkdir(parents=True)
    worse = {"split": "valid", "step": 100, "accuracy": 0.4, "de_src2tgt": 0.1, "de_tgt2src": 0.1, "mse": 0.003}
    best = {"split": "valid", "step": 200, "accuracy": 0.6, "de_src2tgt": 0.7, "de_tgt2src": 0.5, "fr_src2tgt": 0.6,
            "fr_tgt2src": 0.6, "mse": 0.00215}
    lines = [{"loss": 1.0, "step": 50}, best, worse]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "multilingual_table.py"), "--root", str(tmp_path / "minilm"),
                          "--valid"], capture_output=True, text=True, check=True).stdout
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines()}
    assert rows["mul_mse (mse.config; stage 1 of the rows below)"] == "| mul_mse (mse.config; stage 1 of the rows below) | 200 | 60.0 (70.0 / 50.0) | 60.0 (60.0 / 60.0) | - | 60.0 | 2.15 |"
    assert "missing" in rows["rec_bottle_mcl (stage 4, MCL)"]


def test_cpu_script_chains_the_stages_and_gives_stage4_its_epochs(tmp_path):
    """experiments/multilingual_cpu.sh with a stand-in `python` that records each train.py call and marks it done."""
    import os
    import subprocess
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\necho "$@" >> "$CALLS"\nwhile [[ $# -gt 0 ]]; do [[ $1 == --logdir ]] && '
                    'mkdir -p "$2" && touch "$2/train_summary.json"; shift; done\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "STAGE4_EPOCHS": "3"}
    root = tmp_path / "r"
    subprocess.run(["bash", str(REPO / "experiments" / "multilingual_cpu.sh"), str(root), "--set", "train.epoch=1"],
                   cwd=REPO, env=env, check=True, capture_output=True)
    calls = {line.split("--logdir ")[1].split()[0].rsplit("/", 1)[-1]: line
             for line in (tmp_path / "calls").read_text().splitlines()}
    assert sorted(calls) == sorted(["mse", "bottle_distill", "rec_bottle_distill", "teacher_direct", "rec_bottle_mcl",
                                    "rec_bottle_bool", "rec_bottle_ce", "rec_bottle_mse"])
    assert f"distill.teacher={root}/mse" in calls["rec_bottle_distill"]
    assert f"model.pretrained={root}/rec_bottle_distill" in calls["rec_bottle_ce"]
    for stage in ("mse", "bottle_distill", "rec_bottle_distill"):
        assert calls[stage].count("train.epoch=") == 1
    for stage in ("rec_bottle_mcl", "rec_bottle_bool", "rec_bottle_ce", "rec_bottle_mse"):
        assert "--set train.epoch=1 --set train.epoch=3 " in calls[stage]  # the later --set wins
