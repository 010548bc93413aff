"""Markdown table of the text-matching comparison (docs/MATCHING.md): teacher vs plain two-tower vs VIRT vs DC-BERT per
task, from the run directories the pipelines write (config/match/<TASK>/pipeline.config).

  python experiments/match_table.py runs/match/RTE runs/match/QQP runs/match/BoolQ
  python experiments/match_table.py --seeds runs/match_cpu/RTE runs/match_cpu/RTE_s43 runs/match_cpu/RTE_s44

--seeds groups the roots by task (a root named TASK_sN is seed N of TASK) and gives each model's test accuracy as
mean +- sample std over the seeds found, with VIRT's gain over its no-teacher late-fusion twin seed by seed.

Each <root>/<stage>/results.json (written by --do_test / test.py) gives the test metrics, the online FLOPs per
query (two-tower models: given the cached document; the cross-encoder: everything) and the measured batch-1
CPU latency of that online part. Missing runs are shown as missing, not skipped."""
import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

ROWS = [("teacher", "cross-encoder teacher (bert_bipartition)"), ("siamese", "plain two-tower (siamese)"),
        ("late_fusion", "late-fusion two-tower, no teacher"), ("virt", "VIRT (late fusion + virtual attention KD)"),
        ("dc_bert", "DC-BERT")]


def load(root, stage):
    path = Path(root) / stage / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def metric_gap(first, second, name):
    """first - second on one metric, in points; None when either run lacks it (F1 exists for QQP only)."""
    a, b = first["metrics"].get(name), second["metrics"].get(name)
    return None if a is None or b is None else 100 * (a - b)


def row(task, label, results):
    if results is None:
        return f"| {task} | {label} | missing | | | | |"
    metrics = results["metrics"]
    f1 = f" / {100 * metrics['f1']:.2f}" if "f1" in metrics else ""
    flops = results.get("flops", {})
    online, offline = flops.get("online"), flops.get("offline")
    gflops = lambda x: f"{x / 1e9:.3f}" if x is not None else "-"
    params = results.get("params_with_heads", results.get("params"))
    return (f"| {task} | {label} | {100 * metrics['accuracy']:.2f}{f1} | {gflops(online)} | {gflops(offline)} | "
            f"{results.get('latency_ms', '-')} | {params:,} |")


def table(roots):
    lines = ["| task | model | test accuracy (/ F1) % | online GFLOPs per query | offline GFLOPs per doc (cached) | "
             "online CPU ms, batch 1 | params |", "|---|---|---|---|---|---|---|"]
    gaps = []
    for root in roots:
        task = Path(root).name
        found = {stage: load(root, stage) for stage, _ in ROWS}
        lines += [row(task, label, found[stage]) for stage, label in ROWS]
        if found["virt"] and found["siamese"]:
            virt, siamese, twin_run = found["virt"], found["siamese"], found["late_fusion"]
            gap, f1_gap = metric_gap(virt, siamese, "accuracy"), metric_gap(virt, siamese, "f1")
            f1 = f" (F1 {f1_gap:+.2f})" if f1_gap is not None else ""
            twin = f"; vs its no-teacher late-fusion twin {metric_gap(virt, twin_run, 'accuracy'):+.2f}" if twin_run else ""
            gaps.append(f"- {task}: VIRT - plain two-tower = {gap:+.2f} accuracy points{f1}{twin}")
    return "\n".join(lines + [""] + gaps)


def task_of(root):
    """RTE_s43 -> RTE: the seed roots of one task share its name."""
    return re.sub(r"_s\d+$", "", Path(root).name)


def mean_std(values):
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def seed_table(roots):
    """Per task and model: accuracy mean +- std over the seed roots that have it; VIRT vs its twin per seed."""
    groups = defaultdict(list)
    for root in roots:
        groups[task_of(root)].append(root)
    lines = ["| task | model | seeds | test accuracy %, mean ± std | per seed |", "|---|---|---|---|---|"]
    gaps = []
    for task, members in groups.items():
        found = {stage: [load(root, stage) for root in members] for stage, _ in ROWS}
        for stage, label in ROWS:
            runs = {(Path(root) / stage).resolve(): r for root, r in zip(members, found[stage]) if r is not None}
            scores = [100 * r["metrics"]["accuracy"] for r in runs.values()]  # a run linked into seed roots counts once
            if scores:
                per_seed = ", ".join(f"{x:.2f}" for x in scores)
                lines.append(f"| {task} | {label} | {len(scores)} | {mean_std(scores)} | {per_seed} |")
        pairs = [(v, t) for v, t in zip(found["virt"], found["late_fusion"]) if v is not None and t is not None]
        if pairs:
            diffs = [metric_gap(v, t, "accuracy") for v, t in pairs]
            ahead = sum(d > 0 for d in diffs)
            gaps.append(f"- {task}: VIRT - late-fusion twin = {statistics.mean(diffs):+.2f} points "
                        f"({ahead}/{len(diffs)} seeds ahead; per seed {', '.join(f'{d:+.2f}' for d in diffs)})")
    return "\n".join(lines + [""] + gaps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="pipeline run directories, e.g. runs/match/RTE")
    parser.add_argument("--seeds", action="store_true", help="mean +- std over roots named TASK, TASK_sN, ...")
    args = parser.parse_args()
    print(seed_table(args.roots) if args.seeds else table(args.roots))


if __name__ == "__main__":
    main()
