"""What a real-size teacher's students keep: all-mpnet-base-v2 (110M) fine-tuned per task, then per seed four students
by Hinton KD, each beside its no-teacher twin, then batch-1 CPU latency, as one job graph of train.py / test.py
commands (experiments/compare_full.py runs it: finished jobs are skipped, unfinished ones resume).

  python experiments/retention_runs.py --tasks SST-2 MRPC CoLA --seeds 1 2 3 [--max_examples SST-2=8000] [--dry]
  python experiments/retention_runs.py --table --tasks SST-2 MRPC CoLA --seeds 1 2 3     # one table per task
      [--extra cut6_kd_transfer=cut6_twin]   # a run made outside the graph (train.py into s<SEED>/<TASK>/RUN)

Runs (KD / twin; the twins never meet the teacher):
  cut6_kd / cut6_twin      6 x 768: the fine-tuned teacher's layers 1, 3, ..., 11 / the same layers of pretrained MPNet
  cut4_kd / cut4_twin      4 x 768: layers 2, 5, 8, 11, likewise
  minilm_kd / minilm_twin  all-MiniLM-L6-v2 (6 x 384, BERT's vocabulary: the teacher reads its own ids) / on labels only
  tiny4_kd / tiny4_twin    4 x 312 MPNet, random, then TinyBERT general distillation from pretrained MPNet
                           (general/tinybert, --general_steps) / that student on labels only
Layout under --root (default runs/retention): teachers/<TASK>, general/tinybert, s<SEED>/<TASK>/<run>,
latency/<same paths>, logs/, done/. Training runs skip latency; after every training job, one at a time, test.py
re-tests the teachers and the first seed's runs on CPU with batch-1 latency into latency/ (a run's latency depends on
its shape, not its seed; timed alone, not beside other jobs nor on a GPU), then the other seeds' runs in fp32 without
timing. --table reads those, else the runs.
"""
import argparse
import shlex
import sys
from pathlib import Path

from experiments import retention_table
from experiments.compare_full import GENERAL_STEPS, Job, add_graph_arguments, execute, parse_overrides, train

TASKS = ("SST-2", "MRPC", "CoLA")
EPOCHS = {"SST-2": 3, "MRPC": 3, "CoLA": 3}  # the students' (and twins') epochs, as the teacher's config has
MAX_EXAMPLES = {"SST-2": 8000}  # all 67k SST-2 rows would take days on CPU; MRPC and CoLA run in full
LATENCY_EXAMPLES = 50  # batch-1 examples timed per model, as config/glue/glue_base.config's latency_batches
PAIRS = (("cut6_kd", "cut6_twin"), ("cut4_kd", "cut4_twin"), ("minilm_kd", "minilm_twin"), ("tiny4_kd", "tiny4_twin"))
PAPERS = {"cut6_kd": "DistilBERT 6 x 768: 97% of BERT-base's GLUE score at 1.6x (Sanh et al. 2019)",
          "tiny4_kd": "TinyBERT4 4 x 312: 96.8% of BERT-base at 9.4x (Jiao et al. 2020)",
          "minilm_kd": "MiniLM-L6xH384 from BERT-base: SST-2 91.5 dev (Wang et al. 2020)"}


class Parser(argparse.ArgumentParser):
    """Bad input ends in one line naming the argument, exit 2 (argparse would print its usage first)."""
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def per_task(parser, arg, items, defaults, least):
    """TASK=N items over the defaults -> {task: N}; an unknown task or an N below `least` is one line naming the item."""
    values = dict(defaults)
    for item in items:
        task, sep, n = item.partition("=")
        if task not in TASKS:
            parser.error(f"{arg} {item}: expected TASK=N, TASK one of {', '.join(TASKS)}")
        if not sep or not n.isdigit() or int(n) < least:
            parser.error(f"{arg} {item}: expected TASK=N with a whole N >= {least}")
        values[task] = int(n)
    return values


def general_job(root, steps, precision=()):
    """The 4 x 312 student's TinyBERT general distillation from pretrained MPNet: random weights teach a task nothing."""
    g = root / "general" / "tinybert"
    return Job("general_tinybert", train("config/general/tinybert_general_mpnet.config", g, f"train.max_steps={steps}",
                                         *precision, test=False), g)


def task_jobs(root, task, seeds, epochs, max_examples=0, overrides=None, precision=()):
    """The teacher, then per seed every student beside its twin; overrides: {run: [KEY=VALUE, ...]} appended last
    (run "teacher": the teacher job). max_examples > 0: every run of the task trains on its first N rows;
    precision: sets every training job of the task gets (train.precision=bf16 halves MPNet's CPU time)."""
    overrides = overrides or {}
    c, teacher, tiny = f"config/glue/{task}", root / "teachers" / task, root / "general" / "tinybert"
    subset = [f"data.max_examples={max_examples}"] if max_examples else []
    subset += list(precision)
    t = f"{task}_teacher"
    jobs = [Job(t, train(f"{c}/mpnet_teacher.config", teacher, *subset, *overrides.get("teacher", [])), teacher)]
    T, E, whole = f"distill.teacher={teacher}", f"train.epoch={epochs}", "student.num_layers=0"
    spec = [  # name, config, deps, sets
        ("cut6_kd", "mpnet_kd.config", [t], [T, E]),
        ("cut6_twin", "mpnet_kd_baseline.config", [], [E]),
        ("cut4_kd", "mpnet_kd.config", [t], [T, E, "student.num_layers=4"]),
        ("cut4_twin", "mpnet_kd_baseline.config", [], [E, "student.num_layers=4"]),
        ("minilm_kd", "kd.config", [t], [T, E, whole]),  # kd.config's student is all-MiniLM-L6-v2; here all 6 layers
        ("minilm_twin", "teacher.config", [], [E]),  # the MiniLM teacher's own config: all-MiniLM-L6-v2 on labels
        ("tiny4_kd", "kd.config", [t, "general_tinybert"], [T, E, whole, f"model.pretrained={tiny}"]),
        ("tiny4_twin", "teacher.config", ["general_tinybert"], [E, f"model.pretrained={tiny}"]),
    ]
    for seed in seeds:
        d = root / f"s{seed}" / task
        for name, config, deps, sets in spec:
            jobs.append(Job(f"s{seed}_{task}_{name}", train(f"{c}/{config}", d / name, *sets, *subset,
                                                            *overrides.get(name, []), seed=seed), d / name, deps))
    return jobs


def latency_dir(root, run_dir):
    """Where a run's latency re-test goes: the run's own path under root/latency."""
    return root / "latency" / Path(run_dir).relative_to(root)


def latency_jobs(root, jobs, first_seed):
    """test.py on CPU, fp32 (the model as deployed), of every tested run into latency/: the teachers and the first
    seed's runs one at a time with batch-1 latency, a chain that starts when every training job is done, so each
    model is timed with nothing else of the graph running; then the other seeds' runs without timing, so every
    score in a table comes from the same precision (a bf16-trained run's own test ran under bf16 autocast)."""
    tested = [j for j in jobs if "--do_test" in j.cmd]
    timed = [j for j in tested if j.name.endswith("_teacher") or j.name.startswith(f"s{first_seed}_")]
    out, previous = [], [j.name for j in jobs]
    for job in timed + [j for j in tested if j not in timed]:
        where, time_it = latency_dir(root, job.logdir), job in timed
        cmd = [sys.executable, "test.py", "--checkpoint", str(job.logdir), "--logdir", str(where),
               "--set", f"eval.latency_batches={LATENCY_EXAMPLES if time_it else 0}", "--set", "train.precision=fp32"]
        out.append(Job(f"{'latency' if time_it else 'fp32'}_{job.name}", cmd, where, previous, resumable=False))
        if time_it:
            previous = [out[-1].name]
    return out


def finished(root, run_dir):
    """A run's results: its latency re-test (the same checkpoint, plus latency) when there is one, else its own."""
    for where in (latency_dir(root, run_dir), Path(run_dir)):
        if (where / "results.json").is_file():
            return where
    return None


def table_argv(root, task, seeds, extra=()):
    """retention_table.py's arguments for one task: the finished seeds of each run, twins and papers where present.
    extra: (RUN, TWIN) pairs of runs made outside the graph under s<SEED>/<TASK>/RUN (TWIN: one of PAIRS' twins),
    e.g. a student with a transfer set; a task without such a run leaves it out, as an unfinished run."""
    teacher = root / "teachers" / task
    argv, present = ["--teacher", str(finished(root, teacher) or teacher)], set()
    pairs = PAIRS + tuple(extra)
    for run in dict.fromkeys(name for pair in pairs for name in pair):
        dirs = [str(d) for seed in seeds if (d := finished(root, root / f"s{seed}" / task / run))]
        if dirs:
            argv += ["--row", f"{run}={','.join(dirs)}"]
            present.add(run)
        else:
            print(f"retention_runs: {task} {run}: no finished run yet, left out", file=sys.stderr)
    argv += [f"--twin={kd}={twin}" for kd, twin in pairs if {kd, twin} <= present]
    argv += [f"--paper={run}={text}" for run, text in PAPERS.items() if run in present]
    return argv + ["--plot", str(root / f"retention_{task}.png")]


def main():
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", nargs="*", default=[], metavar="TASK=E",
                        help=f"student epochs (default {', '.join(f'{k}={v}' for k, v in EPOCHS.items())})")
    parser.add_argument("--max_examples", nargs="*", default=[], metavar="TASK=N",
                        help="train every run of TASK on its first N rows, 0 = all (default "
                             + ", ".join(f"{k}={v}" for k, v in MAX_EXAMPLES.items()) + ")")
    parser.add_argument("--general_steps", type=int, default=GENERAL_STEPS,
                        help="optimizer steps of the 4 x 312 student's general distillation from MPNet")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="training precision of every training job (bf16: CPUs with avx512_bf16/AMX, or a GPU); "
                             "the latency re-test always runs fp32, the model as deployed")
    parser.add_argument("--table", action="store_true", help="print each task's retention table from --root and exit")
    parser.add_argument("--extra", nargs="*", default=[], metavar="RUN=TWIN",
                        help="with --table: a run made outside the graph under s<SEED>/<TASK>/RUN, set beside TWIN")
    add_graph_arguments(parser, "runs/retention")
    args = parser.parse_args()
    root = Path(args.root)
    if args.extra and not args.table:
        parser.error("--extra: only with --table (the graph never runs those runs)")
    if args.table:
        twins = {twin for _, twin in PAIRS}
        extra = [item.partition("=")[::2] for item in args.extra]
        for item, (run, twin) in zip(args.extra, extra):
            if not run or twin not in twins:
                parser.error(f"--extra {item}: expected RUN=TWIN, TWIN one of {', '.join(sorted(twins))}")
        for task in args.tasks:
            argv = table_argv(root, task, args.seeds, extra)
            print(f"\n## {task}\n\n$ python experiments/retention_table.py {shlex.join(argv)}\n", flush=True)
            retention_table.main(argv)
        return
    if args.general_steps < 1:
        parser.error(f"--general_steps {args.general_steps}: expected a step count >= 1")
    epochs = per_task(parser, "--epochs", args.epochs, EPOCHS, 1)
    max_examples = per_task(parser, "--max_examples", args.max_examples, MAX_EXAMPLES, 0)
    overrides = parse_overrides(parser, args.override)
    precision = [f"train.precision={args.precision}"] if args.precision != "fp32" else []
    jobs = [general_job(root, args.general_steps, precision)]
    for task in args.tasks:
        jobs += task_jobs(root, task, args.seeds, epochs[task], max_examples.get(task, 0), overrides, precision)
    jobs.sort(key=lambda j: not j.name.endswith("_teacher"))  # the critical path first (stable)
    execute(parser, args, jobs + latency_jobs(root, jobs, args.seeds[0]), overrides)


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
