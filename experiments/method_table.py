"""Markdown table of the method comparison (experiments/compare_methods.sh): each distilled student next to its
no-teacher twin, with size, dev metric, share of the teacher's metric kept, and batch-1 CPU latency.

  python experiments/method_table.py SST-2 [--root runs/cmp] [--teacher runs/glue/SST-2/teacher]
Latency comes from <root>/latency/<TASK>/*/results.json (experiments/latency_runs.sh, one model at a time), matched
by parameter count (one measurement per student architecture), else from the run's own results.json.
A root with seed folders (experiments/compare_full.py: <root>/s<SEED>/<TASK>/<run>, teacher <root>/teachers/<TASK>)
gives mean +- sample std over the seeds, and in how many seeds the method beat its twin (plus rows for runs made
on the Tang transfer set, `compare_full.py --transfer_set`, and with an unlabeled one, `--unlabeled`):
  python experiments/method_table.py SST-2 --root runs/full --latency_root runs/cmp/latency
--per_seed RUN ... prints, for each seed, each run's best validation score (its step) and its last one, from the
run's metrics.jsonl (a Theseus phase 1 is its own run, e.g. theseus_phase1):
  python experiments/method_table.py MRPC --root runs/full_cpu --per_seed theseus_phase1 theseus theseus_baseline
It also reads experiments/tinybert_ablation.sh's layout (<root>/s<SEED>/<variant>, a stage as <variant>/prediction):
  python experiments/method_table.py MRPC --root runs/abl/MRPC --teacher runs/full_cpu/teachers/MRPC --per_seed twin tr_aug/prediction
"""
import argparse
import configparser
import json
import re
import statistics
from pathlib import Path

# (method, config, distilled run, twin run, what the twin is)
ROWS = [
    ("kd", "kd.config", "kd", "baseline", "first 2 pretrained layers, labels only"),
    ("distilled_bilstm", "distilled_bilstm.config", "distilled_bilstm", "bilstm_baseline", "same BiLSTM, labels only"),
    ("pkd", "pkd.config", "pkd", "pkd_baseline", "teacher's first 2 layers, labels only"),
    # PKD and Theseus start from the fine-tuned teacher's layers, so the twin above has the teacher's task training in
    # its weights; the student that never met a teacher starts from the pretrained layers (kd's twin)
    ("pkd vs the undistilled start", "pkd.config", "pkd", "baseline", "first 2 pretrained layers, labels only"),
    ("tinybert", "tinybert.config", "tinybert", "tinybert_baseline", "same general-distilled init, labels only"),
    # the same TinyBERT run against the student that never met a teacher: general distillation starts from the
    # first 2 pretrained layers, so this is the no-teacher twin (the row above isolates the task stage)
    ("tinybert vs the undistilled start", "tinybert.config", "tinybert", "baseline",
     "first 2 pretrained layers, no general distillation, labels only"),
    ("theseus", "theseus_pipeline.config", "theseus", "theseus_baseline", "teacher's first 3 layers, labels only"),
    ("theseus vs the undistilled start", "theseus_pipeline.config", "theseus", "theseus_pretrained_baseline",
     "first 3 pretrained layers, labels only"),
    ("distilbert", "distilbert.config", "distilbert", "distilbert_baseline", "pretrained layers 1,3,5, labels only"),
    # a task stage that is KD against the general-distilled student on labels only: the task KD's own gain
    ("distilbert vs its general-distilled start", "distilbert.config", "distilbert", "distilbert_general_ft",
     "the general-distilled student, labels only"),
    ("minilmv2", "minilmv2.config", "minilmv2", "baseline", "first 2 pretrained layers, labels only"),
    ("minilmv2 vs its general-distilled start", "minilmv2.config", "minilmv2", "minilmv2_general_ft",
     "the general-distilled student, labels only"),
]


def result_dir(root, task, name):
    """The run directory holding the tested student (a pipeline's last stage for Theseus)."""
    path = Path(root) / task / name
    return path / "phase2" if (path / "phase2" / "results.json").is_file() else path


def measured_latencies(root, task, latency_root=None):
    """{architecture (layers, params): latency} from experiments/latency_runs.sh: latency depends on the
    architecture, not the weights, so one measurement per student shape serves every run of that shape."""
    found = {}
    for path in sorted((Path(latency_root) if latency_root else Path(root) / "latency").glob(f"{task}/*/results.json")):
        results = json.loads(path.read_text())
        if results.get("latency_ms") is not None:
            found[results["params"]] = results["latency_ms"]
    return found


def load(root, task, name, latencies=None):
    path = result_dir(root, task, name)
    results = json.loads((path / "results.json").read_text())
    if latencies and results["params"] in latencies:
        results["latency_ms"] = latencies[results["params"]]
    return results


def main_metric(results):
    metrics = results["metrics"]
    for key in ("acc_and_f1", "accuracy", "corr", "mcc"):
        if key in metrics:
            return key, metrics[key]
    raise KeyError(f"no main metric in {sorted(metrics)}")


def twin_layers_said(what, twin_dir):
    """The twin's description with the layer count its run used: `--set student.num_layers=3` (a 3-layer
    twin for a 3-layer student) must not print under the config's "first 2 layers"."""
    ini = twin_dir / "config.ini"
    if not ini.is_file():
        return what
    saved = configparser.ConfigParser(interpolation=None)
    saved.read(ini)
    layers = saved.get("student", "num_layers", fallback="0").strip()
    return re.sub(r"first \d+ ", f"first {layers} ", what) if layers.isdigit() and int(layers) > 0 else what


def describe(metrics):
    return " / ".join(f"{100 * metrics[k]:.2f}" for k in ("accuracy", "f1") if k in metrics)


def evaluations(run_dir, key):
    """[(step, 100 * score)] of the run's validation lines in metrics.jsonl, in training order."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(line["step"], 100 * line[key]) for line in lines if line.get("split") == "valid" and key in line]


def seed_dirs(root, task):
    """[(seed, dir holding that seed's runs)]: <root>/s<SEED>/<TASK>/ (experiments/compare_full.py), or else
    <root>/s<SEED>/ (experiments/tinybert_ablation.sh's ROOT, one task per root)."""
    found = sorted(Path(root).glob("s*/" + task))
    if found:
        return [(d.parent.name[1:], d) for d in found]
    return [(d.name[1:], d) for d in sorted(Path(root).glob("s*")) if d.is_dir() and d.name[1:].isdigit()]


def per_seed_table(args, key):
    """One row per seed: each run's best evaluation (its step; the earliest on ties, as the run keeps it) and last.
    A run may name a stage directory, e.g. tr_aug/prediction."""
    print(f"| seed | " + " | ".join(f"{run}: best {key} (step), last (step)" for run in args.per_seed) + " |")
    print("|---" * (len(args.per_seed) + 1) + "|")
    for seed, seed_dir in seed_dirs(args.root, args.task):
        cells = []
        for run in args.per_seed:
            path = seed_dir / run
            found = evaluations(path, key) if (path / "metrics.jsonl").is_file() else []
            if not found:
                cells.append("-")
                continue
            step, best = max(found, key=lambda e: (e[1], -e[0]))
            cells.append(f"{best:.2f} ({step}), {found[-1][1]:.2f} ({found[-1][0]})")
        print(f"| {seed} | " + " | ".join(cells) + " |")


def latency_cell(results):
    """The results' batch-1 latency, or '-' when no latency run measured it (the key holds None then)."""
    latency = results.get("latency_ms")
    return "-" if latency is None else latency


def seeded_table(args, teacher, key, t_value, cols, latencies):
    """One row per method: mean +- std over the seeds that have both the method and its twin."""
    seeds = sorted(Path(args.root).glob("s*/" + args.task))
    print(f"| method (config) | student params | dev {key}, mean +- std | {key} kept vs teacher | CPU ms, batch 1 | "
          f"no-teacher twin: dev {key} | twin | gain over twin (points) | seeds beating twin |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| teacher (teacher.config) | {teacher['params']:,} | {100 * t_value:.2f} ({describe(teacher['metrics'])}) | "
          f"100% | {latency_cell(teacher)} | - | - | - | - |")
    tang = [(f"{m} on the Tang transfer set", c, f"{r}_tang", f"{t}_tang", f"{w}, same transfer set")
            for m, c, r, t, w in ROWS if any(Path(args.root).glob(f"s*/{args.task}/{r}_tang/results.json"))]
    unlab = [(f"{m} + unlabeled transfer set", c, f"{r}_unlab", f"{t}_unlab", f"{w}, labeled rows for the same steps")
             for m, c, r, t, w in ROWS if any(Path(args.root).glob(f"s*/{args.task}/{r}_unlab/results.json"))]
    for method, config, run, twin, twin_what in ROWS + tang + unlab:
        pairs, params, latency = [], None, "-"
        for seed_dir in seeds:
            try:
                mine, theirs = load(seed_dir.parent, args.task, run, latencies), load(seed_dir.parent, args.task, twin)
            except FileNotFoundError:
                continue
            pairs.append((100 * main_metric(mine)[1], 100 * main_metric(theirs)[1]))
            params, latency = mine["params"], latency_cell(mine)
            twin_said = twin_layers_said(twin_what, result_dir(seed_dir.parent, args.task, twin))
        if not pairs:
            if not args.skip_missing:
                print(f"| {method} ({config}) | missing | | | | | | | |")
            continue
        m, t = [p[0] for p in pairs], [p[1] for p in pairs]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
        wins = sum(a > b for a, b in pairs)
        print(f"| {method} ({config}) | {params:,} | {statistics.mean(m):.2f} +- {sd(m):.2f} | "
              f"{statistics.mean(m) / (100 * t_value):.1%} | {latency} | {statistics.mean(t):.2f} +- {sd(t):.2f} | "
              f"{twin_said} | {statistics.mean(m) - statistics.mean(t):+.2f} | {wins}/{len(pairs)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--root", default="runs/cmp")
    parser.add_argument("--teacher")
    parser.add_argument("--latency_root", help="where experiments/latency_runs.sh wrote (default <root>/latency)")
    parser.add_argument("--suffix", default="", help="read <run><suffix> and <twin><suffix>, e.g. _lr3e-4 "
                        "(experiments/compare_methods.sh mrpc_lr3e4); one-seed roots only")
    parser.add_argument("--skip_missing", action="store_true", help="seed roots: leave out methods with no finished pair")
    parser.add_argument("--per_seed", nargs="+", metavar="RUN", help="seed roots: best and last evaluation of these runs")
    args = parser.parse_args()
    seeded = any(Path(args.root).glob("s*/" + args.task))
    per_seed = bool(args.per_seed and seed_dirs(args.root, args.task))
    in_root = seeded or per_seed
    default_teacher = Path(args.root) / "teachers" / args.task if in_root else Path(f"runs/glue/{args.task}/teacher")
    teacher_dir = Path(args.teacher) if args.teacher else default_teacher
    teacher = json.loads((teacher_dir / "results.json").read_text())
    if per_seed:
        per_seed_table(args, main_metric(teacher)[0])
        return
    latencies = measured_latencies(args.root, args.task, args.latency_root)
    teacher["latency_ms"] = latencies.get(teacher["params"], teacher.get("latency_ms"))
    key, t_value = main_metric(teacher)
    cols = "accuracy / F1" if "f1" in teacher["metrics"] else "accuracy"
    if seeded:
        seeded_table(args, teacher, key, t_value, cols, latencies)
        return
    print(f"| method (config) | student params | dev {cols} | {key} kept vs teacher | CPU ms, batch 1 | "
          f"no-teacher twin: dev {cols} | twin | gain over twin ({key}, points) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| teacher (teacher.config) | {teacher['params']:,} | {describe(teacher['metrics'])} | 100% | "
          f"{latency_cell(teacher)} | - | - | - |")
    for method, config, run, twin, twin_what in ROWS:
        run, twin = run + args.suffix, twin + args.suffix
        try:
            mine, theirs = load(args.root, args.task, run, latencies), load(args.root, args.task, twin)
        except FileNotFoundError as err:
            print(f"| {method} ({config}) | missing: {err.filename} | | | | | | |")
            continue
        _, m = main_metric(mine)
        _, t = main_metric(theirs)
        print(f"| {method} ({config}) | {mine['params']:,} | {describe(mine['metrics'])} | {100 * m / t_value:.1f}% | "
              f"{latency_cell(mine)} | {describe(theirs['metrics'])} | {twin_what} | {100 * (m - t):+.2f} |")


if __name__ == "__main__":
    main()
