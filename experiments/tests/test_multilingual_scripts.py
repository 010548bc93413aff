"""The multilingual experiment scripts: experiments/multilingual_table.py (the results table from run directories),
experiments/vocab_coverage.py and experiments/multilingual_cpu.sh (the stages it chains, with a stand-in python)."""
import json

from tests.helpers import REPO


def run_table(*args, check=True):
    import subprocess
    import sys
    return subprocess.run([sys.executable, str(REPO / "experiments" / "multilingual_table.py"), *map(str, args)],
                          capture_output=True, text=True, check=check)


def rows_of(out):
    """{label: line} of both tables (the second's lines under 'second: label')."""
    first, second = out.split("| method | seeds | Multi30k")
    rows = {line.split(" | ")[0].strip("| "): line for line in first.splitlines() if line.startswith("| ")}
    rows.update({"second: " + line.split(" | ")[0].strip("| "): line for line in second.splitlines() if line.startswith("| ")})
    return rows


def write_results(run_dir, metrics, **fields):
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"metrics": metrics, **fields}))


def test_multilingual_table_reads_run_dirs(tmp_path):
    root = tmp_path / "minilm"
    metrics = {"deu_src2tgt": 0.9, "deu_tgt2src": 0.8, "fra_src2tgt": 0.7, "fra_tgt2src": 0.7, "ces_src2tgt": 0.5,
               "ces_tgt2src": 0.3, "STS-B-dev_spearman": 0.8123}
    write_results(root / "rec_bottle_mcl", metrics, params=9345792)  # an older results.json: no new keys
    out = run_table("--root", root).stdout
    rows = rows_of(out)
    # Tatoeba mean (0.85 + 0.7 + 0.4) / 3 = 0.65; no Multi30k test, embedding count or latency: "-"
    assert rows["rec_bottle_mcl (stage 4, MCL)"] == ("| rec_bottle_mcl (stage 4, MCL) | 1 | 9,345,792 | - | - | - | 81.2 | - | "
                                                     "85.0 (90.0 / 80.0) | 70.0 (70.0 / 70.0) | 40.0 (50.0 / 30.0) | 65.0 |")
    assert rows["second: rec_bottle_mcl (stage 4, MCL)"] == "| rec_bottle_mcl (stage 4, MCL) | 1 | - | - | - | - |"
    assert "missing" in rows["mul_mse (mse.config; stage 1 of the rows below)"]
    assert "missing" in rows["raw student applied directly (student_direct.config)"]
    assert "*:" not in out  # no latency flagged
    extra = run_table("--root", root, "--extra", f"MCL, 3 epochs (x=1)={root / 'rec_bottle_mcl'}").stdout
    first = extra.split("\n\n")[0].splitlines()
    assert first[-1] == rows["rec_bottle_mcl (stage 4, MCL)"].replace("rec_bottle_mcl (stage 4, MCL)", "MCL, 3 epochs (x=1)")
    bad = run_table("--extra", "no-equals-sign", check=False)
    assert bad.returncode == 2 and "--extra 'no-equals-sign': expected LABEL=RUN_DIR" in bad.stderr


def test_multilingual_table_seeds_give_mean_and_sample_std(tmp_path):
    """Three seed roots of rec_bottle_mcl, the third an older results.json (no Multi30k test, embedding count or
    batch-32 latency); the teacher's row is linked into the seed roots and counts once."""
    roots = [tmp_path / name for name in ("minilm", "minilm_s2", "minilm_s3")]
    seeds = [((0.9, 0.8), 0.80, 10.0), ((0.85, 0.75), 0.82, 12.0), ((0.8, 0.7), 0.84, 14.0)]  # deu, STS-B, batch-1 ms
    multi30k = [{"de_src2tgt": 0.6, "de_tgt2src": 0.4}, {"de_src2tgt": 0.7, "de_tgt2src": 0.5}]
    for n, (root, (deu, sts, b1)) in enumerate(zip(roots, seeds)):
        metrics = {"deu_src2tgt": deu[0], "deu_tgt2src": deu[1], "fra_src2tgt": 0.7, "fra_tgt2src": 0.7,
                   "ces_src2tgt": 0.5, "ces_tgt2src": 0.3, "STS-B-dev_spearman": sts}
        fields = {"params": 9345792, "latency_ms": b1, "latency_reliable": n != 1}
        if n < 2:
            metrics.update(multi30k[n], fr_src2tgt=0.8, fr_tgt2src=0.6, cs_src2tgt=0.3, cs_tgt2src=0.1)
            fields.update(embedding_params=4194304, batch32_latency_ms=100.0 + 10 * n)
        write_results(root / "rec_bottle_mcl", metrics, **fields)
    write_results(roots[0] / "teacher_direct", {"deu_src2tgt": 0.2, "deu_tgt2src": 0.1, "STS-B-dev_spearman": 0.867},
                  params=22565376, embedding_params=11720448, latency_ms=5.0, batch32_latency_ms=40.0,
                  latency_reliable=True)
    for root in roots[1:]:
        (root / "teacher_direct").symlink_to(roots[0] / "teacher_direct")
    out = run_table("--root", roots[0], "--seeds", *roots[1:]).stdout
    rows = rows_of(out)
    # STS-B 80, 82, 84: mean 82, sample std sqrt((4 + 0 + 4) / 2) = 2; batch-1 ms 10, 12, 14 likewise; batch-32 ms
    # 100, 110 (2 of 3): 105 ± sqrt(50) = 7.07; deu per seed 0.85, 0.80, 0.75: 80 ± 5, directions 85 / 75;
    # Tatoeba mean per seed (deu + 0.7 + 0.4) / 3 = 0.65, 0.6333, 0.6167: 63.3 ± 1.7;
    # Multi30k mean per seed (de + fr 0.7 + cs 0.2) / 3 = 0.4667, 0.5: 48.3 ± 2.4 (2 of 3).
    # Seed 2 timed on a loaded machine: its latency cells carry the flag.
    assert rows["rec_bottle_mcl (stage 4, MCL)"] == (
        "| rec_bottle_mcl (stage 4, MCL) | 3 | 9,345,792 | 4,194,304 | 12.0 ± 2.0 * | 105.0 ± 7.1 (2 of 3) * | "
        "82.0 ± 2.0 | 48.3 ± 2.4 (2 of 3) | 80.0 ± 5.0 (85.0 / 75.0) | 70.0 ± 0.0 (70.0 / 70.0) | "
        "40.0 ± 0.0 (50.0 / 30.0) | 63.3 ± 1.7 |")
    # de per seed 0.5, 0.6: 55 ± 7.1, directions 65 / 45
    assert rows["second: rec_bottle_mcl (stage 4, MCL)"] == (
        "| rec_bottle_mcl (stage 4, MCL) | 3 | 55.0 ± 7.1 (2 of 3) (65.0 / 45.0) | 70.0 ± 0.0 (2 of 3) (80.0 / 60.0) | "
        "20.0 ± 0.0 (2 of 3) (30.0 / 10.0) | 48.3 ± 2.4 (2 of 3) |")
    assert rows["teacher applied directly (all-MiniLM-L6-v2)"] == (
        "| teacher applied directly (all-MiniLM-L6-v2) | 1 | 22,565,376 | 11,720,448 | 5.0 | 40.0 | 86.7 | - | "
        "15.0 (20.0 / 10.0) | - | - | 15.0 |")
    assert "*: timed while the process got under half its cores" in out
    bad = run_table("--root", roots[0], "--seeds", tmp_path / "no_such_seed", check=False)
    assert bad.returncode == 2 and f"--seeds {tmp_path / 'no_such_seed'}: no such directory" in bad.stderr


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
    run = tmp_path / "minilm" / "mse"
    run.mkdir(parents=True)
    worse = {"split": "valid", "step": 100, "accuracy": 0.4, "de_src2tgt": 0.1, "de_tgt2src": 0.1, "mse": 0.003}
    best = {"split": "valid", "step": 200, "accuracy": 0.6, "de_src2tgt": 0.7, "de_tgt2src": 0.5, "fr_src2tgt": 0.6,
            "fr_tgt2src": 0.6, "mse": 0.00215}
    lines = [{"loss": 1.0, "step": 50}, best, worse]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "other").mkdir()
    out = run_table("--root", tmp_path / "minilm", "--valid", "--seeds", tmp_path / "other").stdout  # seeds: main root only
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines()}
    assert rows["mul_mse (mse.config; stage 1 of the rows below)"] == "| mul_mse (mse.config; stage 1 of the rows below) | 200 | 60.0 (70.0 / 50.0) | 60.0 (60.0 / 60.0) | - | 60.0 | 2.15 |"
    assert "missing" in rows["rec_bottle_mcl (stage 4, MCL)"]


def run_cpu_script(tmp_path, root, *args, **env):
    """experiments/multilingual_cpu.sh ROOT ARGS with a stand-in `python` that records each train.py call (in
    tmp_path/calls) and marks its run done; returns the script's stdout."""
    import os
    import subprocess
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\necho "$@" >> "$CALLS"\nwhile [[ $# -gt 0 ]]; do [[ $1 == --logdir ]] && '
                    'mkdir -p "$2" && touch "$2/train_summary.json"; shift; done\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"), **env}
    return subprocess.run(["bash", str(REPO / "experiments" / "multilingual_cpu.sh"), str(root), *args], cwd=REPO,
                          env=env, check=True, capture_output=True, text=True).stdout


def test_cpu_script_chains_the_stages_and_gives_stage4_its_epochs(tmp_path):
    """The chain with no phase 3: stages in order, the handoffs, stage 4's epochs, a stage cut off going on."""
    root = tmp_path / "r"
    (root / "mse" / "checkpoints").mkdir(parents=True)  # stage 1 cut off after a step checkpoint: it goes on from it
    (root / "mse" / "checkpoints" / "step-0000100.pt").touch()
    (root / "bottle_distill").mkdir()  # stage 2 cut off before its first checkpoint: it starts afresh
    run_cpu_script(tmp_path, root, "--set", "train.epoch=1", STAGE4_EPOCHS="3")
    calls = {line.split("--logdir ")[1].split()[0].rsplit("/", 1)[-1]: line
             for line in (tmp_path / "calls").read_text().splitlines()}
    assert sorted(calls) == sorted(["mse", "bottle_distill", "rec_bottle_distill", "teacher_direct", "student_direct",
                                    "rec_bottle_mcl", "rec_bottle_bool", "rec_bottle_ce", "rec_bottle_mse"])
    assert "config/multilingual/student_direct.config" in calls["student_direct"]
    assert [stage for stage in calls if "--checkpoint" in calls[stage]] == ["mse"]
    assert f"--checkpoint {root}/mse " in calls["mse"]
    assert f"distill.teacher={root}/mse" in calls["rec_bottle_distill"]
    assert f"model.pretrained={root}/rec_bottle_distill" in calls["rec_bottle_ce"]
    for stage in ("mse", "bottle_distill", "rec_bottle_distill"):
        assert calls[stage].count("train.epoch=") == 1
    for stage in ("rec_bottle_mcl", "rec_bottle_bool", "rec_bottle_ce", "rec_bottle_mse"):
        assert "--set train.epoch=1 --set train.epoch=3 " in calls[stage]  # the later --set wins


def test_cpu_script_phase3_runs_the_branch_the_ablations_and_stage4_seeds(tmp_path):
    """WITH_BRANCHES=1 SEEDS="43 44": rec_distill (from and taught by stage 1) -> rec_mcl; bottle6 (stage 2 with 6
    layers run once, untested) -> wo_all, wo_recursive; stage 4 MCL with seeds 43 and 44 into ROOT_s43, ROOT_s44."""
    root = tmp_path / "r"
    done = run_cpu_script(tmp_path, root, WITH_BRANCHES="1", SEEDS="43 44", STAGE4_EPOCHS="3")
    calls = {line.split("--logdir ")[1].split()[0].split(str(tmp_path) + "/")[1]: line
             for line in (tmp_path / "calls").read_text().splitlines()}
    assert {"r/rec_distill", "r/rec_mcl", "r/bottle6", "r/wo_all", "r/wo_recursive", "r_s43/rec_bottle_mcl",
            "r_s44/rec_bottle_mcl"} <= set(calls) and len(calls) == 9 + 7
    assert "config/distill/minilm_rec_distill.config" in calls["r/rec_distill"]
    assert f"model.pretrained={root}/mse --set distill.teacher={root}/mse" in calls["r/rec_distill"]
    assert f"model.pretrained={root}/rec_distill" in calls["r/rec_mcl"] and "train.epoch=3" in calls["r/rec_mcl"]
    assert "train.epoch" not in calls["r/rec_distill"] + calls["r/bottle6"]  # stage 4's epochs are stage 4's
    assert "config/distill/minilm_bottle_distill.config" in calls["r/bottle6"] and "--do_test" not in calls["r/bottle6"]
    assert "multilingual.layers_to_keep=6 --set multilingual.repeat=1" in calls["r/bottle6"]
    for stage in ("wo_all", "wo_recursive"):
        assert f"config/multilingual/ablation_{stage}.config" in calls[f"r/{stage}"]
        assert f"model.pretrained={root}/bottle6" in calls[f"r/{stage}"] and "--do_test" in calls[f"r/{stage}"]
    for seed in (43, 44):
        call = calls[f"r_s{seed}/rec_bottle_mcl"]
        assert f"--seed {seed} " in call and f"model.pretrained={root}/rec_bottle_distill" in call and "train.epoch=3" in call
    assert done.strip().endswith(f"--root {root} --ablation {root} --seeds {root}_s43 {root}_s44")
