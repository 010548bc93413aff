"""The method-vs-twin comparison at full budgets: every distillation method and the same student trained without
a teacher, on the full training set, several seeds, run as a dependency graph of plain train.py commands,
N at a time (one GPU holds many of these small jobs; on CPU use --jobs 1).

  python experiments/compare_full.py --tasks SST-2 MRPC --seeds 1 2 3 --jobs 12 --gpu 0 [--dry]
  python experiments/method_table.py SST-2 --root runs/full     # mean +- std over the seeds found

Layout under --root (default runs/full): teachers/<TASK>, general/{mlm_head,distilbert,minilmv2,tinybert},
aug/<TASK>/tang.tsv, s<SEED>/<TASK>/<run>, logs/<job>.log, done/<job>. Re-running skips finished jobs and
resumes unfinished ones from their last checkpoint. Budgets: --epochs E per task (two-stage methods,
Theseus and TinyBERT, spend E/2 epochs in each stage, so every student and its twin see E epochs of data).
--override RUN:KEY=VALUE adds a --set to one run of every seed (RUN `teacher`: the teacher job, e.g. the
early-stopped teacher: --override teacher:train.metric=loss teacher:train.metric_mode=min).
"""
import argparse
import math
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from init.config import load_config
from utils.paths import data_file

TWO_STAGE_SPLIT = 2
UNLABELED_EVAL_STEPS = 100  # the student and its twin pick their best of evaluations this many steps apart


class Job:
    def __init__(self, name, cmd, logdir, deps=(), resumable=True):
        self.name, self.cmd, self.logdir, self.deps, self.resumable = name, cmd, Path(logdir), list(deps), resumable


def train(config, logdir, *sets, seed=None, test=True):
    """A train.py command; latency is measured separately on CPU, one model at a time (experiments/latency_runs.sh)."""
    cmd = [sys.executable, "train.py", "--config", config, "--logdir", str(logdir), "--set", "eval.latency_batches=0",
           "--set", "output.tensorboard=false"]
    cmd += ["--do_test"] if test else []
    cmd += ["--seed", str(seed)] if seed is not None else []
    for item in sets:
        cmd += ["--set", item]
    return cmd


GENERAL_STAGES = ("mlm_head", "distilbert", "minilmv2", "tinybert")
GENERAL_STEPS = 2000  # each general stage's optimizer steps unless --general_steps says otherwise


def general_steps(items):
    """--general_steps N [STAGE=N ...] -> {stage: steps}: the last bare N for every general stage, STAGE=N for one."""
    default, explicit = None, {}
    for item in items:
        stage, sep, n = item.rpartition("=")
        if sep and stage not in GENERAL_STAGES:
            raise ValueError(f"--general_steps {item}: no general stage '{stage}' ({', '.join(GENERAL_STAGES)})")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--general_steps {item}: expected a step count >= 1")
        if sep:
            explicit[stage] = int(n)
        else:
            default = int(n)
    return {name: explicit.get(name, default) for name in GENERAL_STAGES}


def general_jobs(root, steps):
    """steps: {stage: optimizer steps}. DistilBERT's teacher is all-MiniLM-L6-v2 with the MLM head fitted first."""
    g = root / "general"
    return [
        Job("general_mlm_head", train("config/general/mlm_head.config", g / "mlm_head",
                                      f"train.max_steps={steps['mlm_head']}", test=False), g / "mlm_head"),
        Job("general_distilbert", train("config/general/distilbert_general.config", g / "distilbert",
                                        f"distill.teacher={g / 'mlm_head' / 'student'}",
                                        f"train.max_steps={steps['distilbert']}", test=False), g / "distilbert",
            ["general_mlm_head"]),
        Job("general_minilmv2", train("config/general/minilmv2_general.config", g / "minilmv2",
                                      f"train.max_steps={steps['minilmv2']}", test=False), g / "minilmv2"),
        Job("general_tinybert", train("config/general/tinybert_general.config", g / "tinybert",
                                      f"train.max_steps={steps['tinybert']}", test=False), g / "tinybert"),
    ]


# each method's twins and first stage: a method on the transfer set takes them along. TinyBERT's second twin is
# `baseline`, the first pretrained layers: its general stage starts there, so that is the student that never met a teacher
TWINS = {"kd": ["baseline"], "pkd": ["pkd_baseline"], "minilmv2": ["baseline", "minilmv2_general_ft"],
         "distilbert": ["distilbert_baseline", "distilbert_general_ft"],
         "theseus": ["theseus_phase1", "theseus_baseline", "theseus_pretrained_baseline"],
         "tinybert": ["tinybert_intermediate", "tinybert_baseline", "baseline"]}


def transfer_set_variants(spec, methods, aug_job, tang, no_aug):
    """`<run>_tang` copies of the listed methods, their first stages and twins, trained on Tang et al.'s transfer
    set (the training set plus masked / n-gram copies): the teacher labels the copies for the distilled student,
    the twin gets the source label, so both still see the same examples for the same epochs."""
    wanted = set(methods) | {x for m in methods for x in TWINS[m]}
    out = []
    for name, config, deps, sets in spec:
        if name not in wanted:
            continue
        deps = [f"{d}_tang" if d in wanted else d for d in deps] + [aug_job]
        renamed = []
        for item in sets:
            if item == no_aug:
                continue
            for stage in wanted:  # a second stage starts from its first stage's _tang export
                item = item.replace(f"/{stage}/", f"/{stage}_tang/")
            renamed.append(item)
        out.append((f"{name}_tang", config, deps, renamed + tang))
    return out


def data_rows(path):
    """Rows of a headed TSV (its non-blank lines after the header)."""
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip()) - 1


def unlabeled_variants(methods, d, g, teacher_job, teacher_set, transfer_file, epochs, steps, labeled_steps, no_aug):
    """`<run>_unlab`: the listed methods (kd, tinybert) on the training set plus an unlabeled transfer set that
    only the teacher can label (kd with hard_weight = 0); each twin sees the labeled rows for the same number of
    optimizer steps, since rows without labels give it nothing to learn from. TinyBERT's two stages take half the
    steps each."""
    transfer, steps_sets = f"data.transfer_file={transfer_file}", [f"train.max_steps={steps}",
                                                                    f"train.epoch={math.ceil(steps / labeled_steps)}"]
    half = [f"train.max_steps={steps // TWO_STAGE_SPLIT}", f"train.epoch={epochs}"]
    every = f"train.eval_steps={UNLABELED_EVAL_STEPS}"  # TinyBERT's configs evaluate every 500 steps: too few here
    out = []
    if "kd" in methods:
        out += [("kd_unlab", "kd.config", [teacher_job], [teacher_set, f"train.epoch={epochs}", transfer, "distill.hard_weight=0"]),
                ("baseline_unlab", "baseline.config", [], steps_sets)]
    if "tinybert" in methods:
        out += [("tinybert_intermediate_unlab", "tinybert_intermediate.config", ["general_tinybert", teacher_job],
                 [teacher_set, *half, no_aug, transfer, f"model.pretrained={g / 'tinybert'}"]),
                ("tinybert_unlab", "tinybert_prediction.config", ["tinybert_intermediate_unlab", teacher_job],
                 [teacher_set, *half, no_aug, transfer, every,
                  f"model.pretrained={d / 'tinybert_intermediate_unlab' / 'student'}"]),
                ("tinybert_baseline_unlab", "tinybert_baseline.config", ["general_tinybert"],
                 [*steps_sets, no_aug, every, f"model.pretrained={g / 'tinybert'}"])]
    return out


def task_jobs(root, task, seeds, epochs, n_aug, transfer=(), stage_steps=0, unlabeled=(), transfer_file=None,
              overrides=None):
    """The teacher, the Tang transfer set, then per seed every method next to its twin. stage_steps > 0: each stage
    of a two-stage method runs that many optimizer steps instead of E/2 epochs (for an odd E, e.g. one epoch of a
    transfer set split in two). unlabeled: methods also run with the unlabeled `transfer_file` (see
    unlabeled_variants). overrides: {run: [KEY=VALUE, ...]} appended to that run's sets (last wins in train.py);
    run "teacher" is the task's teacher job."""
    overrides = overrides or {}
    c, g, teacher = f"config/glue/{task}", root / "general", root / "teachers" / task
    aug = root / "aug" / task / "tang.tsv"
    jobs = [Job(f"{task}_teacher", train(f"{c}/teacher.config", teacher, *overrides.get("teacher", [])), teacher),
            Job(f"{task}_aug", [sys.executable, "tools/augment.py", "--method", "tang", "--task", task,
                                "--input", f"../shared/data/glue/{task}/train.tsv", "--output", str(aug),
                                "--n_aug", str(n_aug)], aug.parent, resumable=False)]
    half = max(1, epochs // TWO_STAGE_SPLIT)
    T = f"distill.teacher={teacher}"
    E = f"train.epoch={epochs}"
    H = f"train.max_steps={stage_steps}" if stage_steps else f"train.epoch={half}"
    no_aug, tang = "data.use_aug=false", [f"data.use_aug=true", f"data.aug_file={aug}"]
    if unlabeled:  # the twins' step count: E epochs of labeled + transfer rows
        kd_config = load_config(f"{c}/kd.config")
        batch, labeled = kd_config.get("train", "batch_size"), data_rows(data_file(kd_config, "train"))
        steps = epochs * math.ceil((labeled + data_rows(transfer_file)) / batch)
    for seed in seeds:
        d = root / f"s{seed}" / task
        t, a = f"{task}_teacher", f"{task}_aug"
        spec = [  # name, config, deps, sets
            ("kd", "kd.config", [t], [T, E]),
            ("baseline", "baseline.config", [], [E]),
            ("pkd", "pkd.config", [t], [T, E]),
            ("pkd_baseline", "pkd_baseline.config", [t], [f"model.pretrained={teacher}", E]),
            ("theseus_baseline", "theseus_baseline.config", [t], [f"model.pretrained={teacher}", E]),
            ("theseus_pretrained_baseline", "theseus_pretrained_baseline.config", [], [E]),
            ("theseus_phase1", "theseus.config", [t], [T, H]),
            ("theseus", "theseus_finetune.config", ["theseus_phase1"],
             [f"model.pretrained={d / 'theseus_phase1' / 'student'}", H]),
            ("distilled_bilstm", "distilled_bilstm.config", [t, a], [T, E, *tang]),
            ("bilstm_baseline", "bilstm_baseline.config", [a], [E, *tang]),
            ("tinybert_intermediate", "tinybert_intermediate.config", [t, "general_tinybert"],
             [T, H, no_aug, f"model.pretrained={g / 'tinybert'}"]),
            ("tinybert", "tinybert_prediction.config", ["tinybert_intermediate"],
             [T, H, no_aug, f"model.pretrained={d / 'tinybert_intermediate' / 'student'}"]),
            ("tinybert_baseline", "tinybert_baseline.config", ["general_tinybert"],
             [E, no_aug, f"model.pretrained={g / 'tinybert'}"]),
            ("distilbert", "distilbert.config", [t, "general_distilbert"],
             [T, E, f"model.pretrained={g / 'distilbert' / 'student'}"]),
            ("distilbert_baseline", "distilbert_baseline.config", [], [E]),
            ("minilmv2", "minilmv2.config", [t, "general_minilmv2"],
             [T, E, f"model.pretrained={g / 'minilmv2' / 'student'}"]),
            # the general-distilled students on labels only: the task-stage KD's own twins
            ("distilbert_general_ft", "distilbert_general_ft.config", ["general_distilbert"],
             [E, f"model.pretrained={g / 'distilbert' / 'student'}"]),
            ("minilmv2_general_ft", "minilmv2_general_ft.config", ["general_minilmv2"],
             [E, f"model.pretrained={g / 'minilmv2' / 'student'}"]),
        ]
        spec += transfer_set_variants(spec, transfer, a, tang, no_aug)
        if unlabeled:
            spec += unlabeled_variants(unlabeled, d, g, t, T, transfer_file, epochs, steps, math.ceil(labeled / batch),
                                       no_aug)
        local = {name for name, *_ in spec}
        for name, config, deps, sets in spec:
            deps = [f"s{seed}_{task}_{x}" if x in local else x for x in deps]
            test = name.removesuffix("_tang").removesuffix("_unlab") not in ("theseus_phase1", "tinybert_intermediate")
            sets = [*sets, *overrides.get(name, [])]
            jobs.append(Job(f"s{seed}_{task}_{name}", train(f"{c}/{config}", d / name, *sets, seed=seed, test=test),
                            d / name, deps))
    return jobs


def launch(job, root, gpu):
    cmd = list(job.cmd)
    if gpu is not None and cmd[1] == "train.py":
        cmd += ["--gpu", gpu]
    if job.resumable and any((job.logdir / "checkpoints").glob("step-*.pt")):  # a killed run may have none yet
        cmd += ["--checkpoint", str(job.logdir)]
    log = open(root / "logs" / f"{job.name}.log", "a")
    log.write(f"$ {shlex.join(cmd)}\n")
    log.flush()
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log


def drop_step_checkpoints(run_dir):
    """A finished run's step-N.pt files (and their older sidecars) are only for resuming it: gone, best.pt and the
    student export stay (what later jobs, test.py and the tables read). An MPNet run's are 1.22 GiB each."""
    from process.checkpoint import checkpoints_in, delete_checkpoint
    for path in checkpoints_in(run_dir):
        delete_checkpoint(path)


def run_graph(jobs, root, parallel, gpu, prune_done=False):
    """Start every job whose dependencies are done, at most `parallel` at once; a failed job's dependants
    are skipped. Writes done/<job> (with its seconds) on success; prune_done: then drops its step checkpoints."""
    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "done").mkdir(parents=True, exist_ok=True)
    done = {j.name for j in jobs if (root / "done" / j.name).is_file()}
    failed, running, by_name = set(), {}, {j.name: j for j in jobs}
    pending = [j for j in jobs if j.name not in done]
    while pending or running:
        for name, (proc, log, start) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            seconds = time.time() - start
            if proc.returncode == 0:
                done.add(name)
                (root / "done" / name).write_text(f"{seconds:.0f}\n")
                if prune_done and by_name[name].resumable:
                    drop_step_checkpoints(by_name[name].logdir)
                print(f"done   {name} ({seconds:.0f} s)", flush=True)
            else:
                failed.add(name)
                print(f"FAILED {name} (rc {proc.returncode}; {root / 'logs' / name}.log)", flush=True)
        for job in list(pending):
            if any(d in failed for d in job.deps):
                pending.remove(job)
                failed.add(job.name)
                print(f"skip   {job.name} (a dependency failed)", flush=True)
            elif len(running) < parallel and all(d in done for d in job.deps):
                pending.remove(job)
                job.logdir.parent.mkdir(parents=True, exist_ok=True)
                proc, log = launch(job, root, gpu)
                running[job.name] = (proc, log, time.time())
                print(f"start  {job.name}", flush=True)
        time.sleep(2)
    return failed


def check_names(parser, jobs, overrides, only):
    """A misspelt run in --override would be dropped without a word, a misspelt job in --only fail with a
    traceback: both end here with one line that names it."""
    runs = {"teacher"} | {j.name.split("_", 2)[2] for j in jobs if re.match(r"s\d+_", j.name)}
    for run in sorted(set(overrides) - runs):
        parser.error(f"--override {run}:{overrides[run][0]}: no run '{run}' in this graph (runs: {', '.join(sorted(runs))})")
    names = {j.name for j in jobs}
    for name in only or []:
        if name not in names:
            parser.error(f"--only {name}: no such job (see --dry for the job names)")


def parse_overrides(parser, items):
    """--override RUN:KEY=VALUE ... -> {run: [KEY=VALUE, ...]}, in the order given."""
    overrides = {}
    for item in items:
        run, sep, setting = item.partition(":")
        if not sep or "=" not in setting:
            parser.error(f"--override {item}: expected RUN:KEY=VALUE, e.g. kd_tang:distill.hard_weight=0")
        overrides.setdefault(run, []).append(setting)
    return overrides


def add_graph_arguments(parser, root):
    """The arguments every job-graph driver shares: where, how many at once, on what, which jobs, print only."""
    parser.add_argument("--override", nargs="*", default=[], metavar="RUN:KEY=VALUE",
                        help="an extra --set for one run of every seed, e.g. kd_tang:distill.hard_weight=0")
    parser.add_argument("--root", default=root)
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once")
    parser.add_argument("--gpu", default=None, help="GPU id passed to every train.py (omit: CPU)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these jobs (and what they need)")
    parser.add_argument("--dry", action="store_true", help="print the jobs and exit")
    parser.add_argument("--prune_done", action="store_true",
                        help="delete a training job's step checkpoints once it is done (best.pt and student/ stay)")


def execute(parser, args, jobs, overrides):
    """Check the names, keep what --only needs, then print (--dry) or run the graph; exit 1 when a job failed."""
    check_names(parser, jobs, overrides, args.only)
    if args.only is not None:
        by_name, keep, todo = {j.name: j for j in jobs}, set(), list(args.only)
        while todo:
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo += by_name[name].deps
        jobs = [j for j in jobs if j.name in keep]
    if args.dry:
        for job in jobs:
            print(job.name, "<-", ",".join(job.deps) or "-", "|", shlex.join(job.cmd))
        return
    failed = run_graph(jobs, Path(args.root), args.jobs, args.gpu, args.prune_done)
    sys.exit(1 if failed else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["SST-2", "MRPC"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", nargs="+", default=["SST-2=2", "MRPC=6"], help="TASK=E, student epochs")
    parser.add_argument("--stage_steps", nargs="*", default=[],
                        help="TASK=N: two-stage methods run N optimizer steps per stage instead of E/2 epochs")
    parser.add_argument("--n_aug", type=int, default=4, help="Tang transfer-set copies per training text")
    parser.add_argument("--general_steps", nargs="+", default=[], metavar="[STAGE=]N",
                        help=f"optimizer steps of the general stages (default {GENERAL_STEPS}): N for all, STAGE=N for one of "
                             + ", ".join(GENERAL_STAGES))
    parser.add_argument("--transfer_set", nargs="*", default=[], choices=sorted(TWINS),
                        help="also run these methods and their twins on the Tang transfer set (<run>_tang)")
    parser.add_argument("--unlabeled", nargs="*", default=[], choices=["kd", "tinybert"],
                        help="also run these methods with the unlabeled transfer set of --transfer_file (<run>_unlab)")
    parser.add_argument("--transfer_file", nargs="*", default=[], help="TASK=path, from tools/transfer_set.py")
    add_graph_arguments(parser, "runs/full")
    args = parser.parse_args()
    root = Path(args.root)
    epochs = dict(item.split("=") for item in args.epochs)
    stage_steps = {task: int(n) for task, n in (item.split("=") for item in args.stage_steps)}
    transfer_files = dict(item.split("=", 1) for item in args.transfer_file)
    if args.unlabeled and set(args.tasks) - set(transfer_files):
        parser.error(f"--unlabeled needs --transfer_file for {sorted(set(args.tasks) - set(transfer_files))}")
    overrides = parse_overrides(parser, args.override)
    try:
        jobs = general_jobs(root, general_steps([str(GENERAL_STEPS), *args.general_steps]))
    except ValueError as err:
        parser.error(str(err))
    for task in args.tasks:
        jobs += task_jobs(root, task, args.seeds, int(epochs[task]), args.n_aug, args.transfer_set,
                           stage_steps.get(task, 0), args.unlabeled, transfer_files.get(task), overrides)
    jobs.sort(key=lambda j: not j.name.endswith(("_teacher", "_aug")))  # the critical path first (stable)
    execute(parser, args, jobs, overrides)


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
