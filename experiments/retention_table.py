"""Markdown table (and optional picture) of what a teacher's students keep for what they save: one row per method,
its seeds pooled, beside the teacher and, where given, a paper's own figure for the same trade.

  python experiments/retention_table.py --teacher runs/full/teachers/SST-2 \\
      --row kd=runs/full/s1/SST-2/kd,runs/full/s2/SST-2/kd,runs/full/s3/SST-2/kd \\
      --row twin=runs/full/s1/SST-2/baseline,runs/full/s2/SST-2/baseline,runs/full/s3/SST-2/baseline \\
      --twin kd=twin --paper "kd=DistilBERT: 97% of BERT-base at 1.6x" --plot runs/full/retention.png

Every DIR holds a results.json (train.py --do_test, test.py). Columns: parameters; batch-1 CPU latency (its
latency_ms, the median over a row's seeds); speed-up (teacher latency / the row's); the --metric x 100 as mean ±
sample std (n - 1) over the seeds (default: the task's main metric, e.g. mcc for CoLA, as the teacher's evaluator
names it in its config.ini, not the [train] metric that picked its checkpoint; without one, the first metric in its
results.json); retained, the mean over seeds of student / teacher; seeds; the gain over the row named the twin by
--twin LABEL=TWIN_LABEL (difference of the means, points, and in how many seeds it is ahead, the dirs paired in
the order given, when both rows hold as many); --paper LABEL=TEXT. --plot OUT.png draws score against
latency (log x), one marker per method with its std as error bar, written through a temp file then renamed.
A missing folder or results.json, or a run without the metric, ends with one line naming the argument, exit 2."""
import argparse
import io
import statistics
import sys
from pathlib import Path

from deploy.model_card import atomic_write, read_config, read_json, selecting_metric
from experiments.match_table import mean_std


def fail(arg, value, what):
    """One line naming the argument and the path, exit 2 (the project's code for bad input)."""
    print(f"retention_table: {arg} {value}: {what}", file=sys.stderr)
    raise SystemExit(2)


def labelled(arg, spec):
    """'LABEL=VALUE' -> (LABEL, VALUE)."""
    label, sep, value = spec.partition("=")
    if not sep or not label.strip() or not value.strip():
        fail(arg, spec, "expected LABEL=VALUE")
    return label.strip(), value.strip()


def load(arg, path):
    """The run's results.json, checked before any number is drawn from it."""
    if not Path(path).is_dir():
        fail(arg, path, "no such folder")
    results = read_json(Path(path) / "results.json")
    if results is None or not isinstance(results.get("metrics"), dict):
        fail(arg, path, "no readable results.json with metrics in it")
    return results


def score(arg, path, results, metric):
    value = results["metrics"].get(metric)
    if not isinstance(value, (int, float)):
        fail(arg, path, f"results.json has no metric '{metric}' (it has: {', '.join(sorted(results['metrics']))})")
    return 100 * value


def summarise(label, runs, metric, teacher_score):
    """runs: [(arg, dir, results)] of one method -> its numbers (scores in points)."""
    scores = [score(arg, path, results, metric) for arg, path, results in runs]
    latencies = [r.get("latency_ms") for _, _, r in runs if isinstance(r.get("latency_ms"), (int, float))]
    return {"label": label, "params": runs[0][2].get("params"), "scores": scores,
            "latency": statistics.median(latencies) if latencies else None,
            "retained": statistics.mean(s / teacher_score for s in scores)}


def ahead(scores, twin_scores):
    """', ahead k/n': in how many seeds the method beat its twin, the seeds paired in the order given (the same
    seed's runs); nothing when the two rows hold different numbers of seeds and cannot be paired."""
    if len(scores) != len(twin_scores):
        return ""
    return f", ahead {sum(s > t for s, t in zip(scores, twin_scores))}/{len(scores)}"


def table(rows, teacher, metric, twins, papers):
    """rows[0] is the teacher's: markdown lines."""
    cell = lambda x, fmt: "-" if x is None else format(x, fmt)
    by_label = {row["label"]: row for row in rows}
    lines = [f"| method | parameters | CPU ms, batch 1 | speed-up | {metric} x100, mean ± std | retained | seeds | "
             "gain over twin (points) | paper |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        speedup = teacher["latency"] / row["latency"] if teacher["latency"] and row["latency"] else None
        twin = by_label.get(twins.get(row["label"]))
        gain = (f"{statistics.mean(row['scores']) - statistics.mean(twin['scores']):+.2f} vs {twin['label']}"
                f"{ahead(row['scores'], twin['scores'])}" if twin else "-")
        lines.append(f"| {row['label']} | {cell(row['params'], ',')} | {cell(row['latency'], '.2f')} | "
                     f"{cell(speedup, '.2f')}{'x' if speedup else ''} | {mean_std(row['scores'])} | "
                     f"{100 * row['retained']:.1f}% | {len(row['scores'])} | {gain} | {papers.get(row['label'], '')} |")
    return lines


def plot(rows, metric, out):
    """Score against batch-1 latency, log x; rows without a latency cannot be placed and are left out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.8))
    try:
        for i, row in enumerate(rows):
            if not row["latency"]:
                continue
            sd = statistics.stdev(row["scores"]) if len(row["scores"]) > 1 else 0.0
            ax.errorbar([row["latency"]], [statistics.mean(row["scores"])], yerr=[sd], fmt="*" if i == 0 else "o",
                        markersize=12 if i == 0 else 7, capsize=4, color=f"C{i % 10}", label=row["label"])
        ax.set(xscale="log", xlabel="CPU latency ms, batch 1 (log)", ylabel=f"{metric} x100 (mean ± std over seeds)",
               title="score vs latency: the teacher (star) and its students")
        for axis_format in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            axis_format(matplotlib.ticker.FormatStrFormatter("%g"))  # 3 ms, not 3 x 10^0
        if ax.has_data():
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no run has a batch-1 latency", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=100)
    finally:
        plt.close(fig)
    atomic_write(out, image.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="the teacher's run directory")
    parser.add_argument("--row", action="append", default=[], metavar="LABEL=DIR1,DIR2", help="a method's seed runs")
    parser.add_argument("--twin", action="append", default=[], metavar="LABEL=TWIN_LABEL")
    parser.add_argument("--paper", action="append", default=[], metavar="LABEL=TEXT")
    parser.add_argument("--metric", help="a key of results.json's metrics (default: the teacher's selecting metric)")
    parser.add_argument("--plot", metavar="OUT.png")
    args = parser.parse_args(argv)
    teacher = load("--teacher", args.teacher)
    config = read_config(args.teacher)
    if config is not None:
        config.set("train", "metric", "")  # the task's own metric, not what selected the checkpoint (e.g. loss)
    metric = args.metric or selecting_metric(config, teacher["metrics"])
    teacher_score = score("--teacher", args.teacher, teacher, metric)
    methods = [labelled("--row", spec) for spec in args.row]
    runs = [[("--row", d, load("--row", d)) for d in dirs.split(",") if d.strip()] for _, dirs in methods]
    for (label, dirs), found in zip(methods, runs):
        if not found:
            fail("--row", f"{label}={dirs}", "no run directory named")
    rows = [summarise("teacher", [("--teacher", args.teacher, teacher)], metric, teacher_score)]
    rows += [summarise(label, found, metric, teacher_score) for (label, _), found in zip(methods, runs)]
    twins = dict(labelled("--twin", spec) for spec in args.twin)
    for label, twin in twins.items():
        if twin not in {row["label"] for row in rows}:
            fail("--twin", f"{label}={twin}", f"no --row is labelled {twin}")
    print("\n".join(table(rows, rows[0], metric, twins, dict(labelled("--paper", s) for s in args.paper))))
    if args.plot:
        plot(rows, metric, args.plot)


if __name__ == "__main__":
    main()
