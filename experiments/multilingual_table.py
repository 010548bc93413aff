"""Markdown tables of the multilingual runs (config/multilingual/minilm_pipeline.config, ablation_pipeline.config),
read from <root>/<stage>/results.json. The first: per model its parameters, those of its word table (with a
bottleneck's e -> hidden projection: efficiency/counts.py embedding_params), median CPU latency at batch 1 and 32,
STS-B Spearman, the Multi30k test 2016 mean and Tatoeba deu/fra/ces (mean of x->eng and eng->x, the two directions in
brackets) with their mean. The second: Multi30k test 2016 per language, the same way. Keys an older results.json
lacks show "-".
--seeds ROOT ...: more roots of the same pipeline run with other seeds; a stage found under several roots shows
mean ± sample std over them and their count (a run directory linked into several roots counts once).
--valid prints the Multi30k val accuracies instead (the main root's; in the training data's domain, unlike Tatoeba),
from the evaluation in <root>/<stage>/metrics.jsonl that picked the tested checkpoint.

  python experiments/multilingual_table.py [--root runs/multilingual/minilm] [--seeds ROOT ...] [--ablation DIR]
      [--valid] [--extra "LABEL=RUN_DIR" ...]   (rows for runs outside the pipeline's layout, e.g. another budget)
"""
import argparse
import json
import statistics
from pathlib import Path

LANGS = ("deu", "fra", "ces")
MULTI30K = ("de", "fr", "cs")  # Multi30k's sets (val and test 2016) are named by their files' suffixes
# (row label, run directory under the root)
ROWS = [
    ("teacher applied directly (all-MiniLM-L6-v2)", "teacher_direct"),
    ("raw student applied directly (student_direct.config)", "student_direct"),
    ("mul_mse (mse.config; stage 1 of the rows below)", "mse"),
    ("rec_distill (stage 3, no bottleneck; taught by stage 1 on captions + Wikipedia)", "rec_distill"),
    ("rec_mcl (stage 4, no bottleneck)", "rec_mcl"),
    ("rec_bottle_distill (stage 3; taught by stage 1 on captions + Wikipedia)", "rec_bottle_distill"),
    ("rec_bottle_mcl (stage 4, MCL)", "rec_bottle_mcl"),
    ("rec_bottle_mse (MCL -> none)", "rec_bottle_mse"),
    ("rec_bottle_bool (MCL -> Bool)", "rec_bottle_bool"),
    ("rec_bottle_ce (MCL -> CE)", "rec_bottle_ce"),
]
ABLATIONS = [("ablation_wo_all (6 layers once, MSE only)", "wo_all"),
             ("ablation_wo_recursive (6 layers once, MSE + MCL)", "wo_recursive")]
NOTE = ("embedding params: the word table (vocab x width) plus a bottleneck's width -> hidden projection; batch-1 / "
        "batch-32 ms: the model's median CPU latency on the test split's first examples one at a time, and on its first "
        "32 as one batch")
UNRELIABLE = "*: timed while the process got under half its cores (results.json latency_reliable false)"


def pct(value):
    return f"{100 * value:.1f}" if value is not None else "-"


def ms(value):
    return f"{value:.1f}"


def spread(values, fmt, runs):
    """One value as it is; several as mean ± sample std; with the count when fewer runs than the row's have it."""
    if not values:
        return "-"
    text = fmt(values[0]) if len(values) == 1 else f"{fmt(statistics.mean(values))} ± {fmt(statistics.stdev(values))}"
    return text + (f" ({len(values)} of {runs})" if len(values) < runs else "")


def directions(m, lang):
    there, back = m.get(f"{lang}_src2tgt"), m.get(f"{lang}_tgt2src")
    return None if there is None or back is None else (there, back)


def lang_cell(metrics, lang):
    """'mean (there / back)' of one language's two retrieval directions, over the runs that have both."""
    pairs = [p for p in (directions(m, lang) for m in metrics) if p is not None]
    if not pairs:
        return "-"
    there, back = zip(*pairs)
    return (f"{spread([(a + b) / 2 for a, b in pairs], pct, len(metrics))} "
            f"({pct(statistics.mean(there))} / {pct(statistics.mean(back))})")


def bench_mean(m, langs):
    """Mean accuracy over the languages one run has (each the mean of its two directions), or None."""
    means = [(p[0] + p[1]) / 2 for p in (directions(m, lang) for lang in langs) if p is not None]
    return sum(means) / len(means) if means else None


def load(run_dir):
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def found_runs(dirs):
    """results.json of each directory that has one; a directory reached from several roots counts once."""
    runs = {}
    for run_dir in dirs:
        results = load(run_dir)
        if results is not None:
            runs.setdefault(Path(run_dir).resolve(), results)
    return list(runs.values())


def count_cell(runs, key):
    """A parameter count: one value when every run agrees (they share a config), else each one."""
    values = list(dict.fromkeys(r[key] for r in runs if r.get(key) is not None))
    return " / ".join(f"{v:,}" for v in values) if values else "-"


def latency_cell(runs, key):
    flag = " *" if any(r.get("latency_reliable") is False for r in runs if key in r) else ""
    return spread([r[key] for r in runs if key in r], ms, len(runs)) + flag


def metric_cell(metrics, get):
    """A score (x100) over the runs' metrics: `get` reads one run's value, None where it has none."""
    return spread([v for v in map(get, metrics) if v is not None], pct, len(metrics))


def cells(runs):
    """The first table's cells after the label, for the runs of one row (one per seed)."""
    metrics = [r["metrics"] for r in runs]
    return ([str(len(runs)), count_cell(runs, "params"), count_cell(runs, "embedding_params"),
             latency_cell(runs, "latency_ms"), latency_cell(runs, "batch32_latency_ms"),
             metric_cell(metrics, lambda m: m.get("STS-B-dev_spearman", m.get("spearman"))),
             metric_cell(metrics, lambda m: bench_mean(m, MULTI30K))]
            + [lang_cell(metrics, lang) for lang in LANGS] + [metric_cell(metrics, lambda m: bench_mean(m, LANGS))])


def multi30k_cells(runs):
    metrics = [r["metrics"] for r in runs]
    return ([str(len(runs))] + [lang_cell(metrics, lang) for lang in MULTI30K]
            + [metric_cell(metrics, lambda m: bench_mean(m, MULTI30K))])


def lines_of(header, rows, make):
    width = header.count("|") - 1
    lines = [header, "|" + "---|" * width]
    for label, dirs in rows:
        runs = found_runs(dirs)
        body = make(runs) if runs else [f"missing: {Path(dirs[0]) / 'results.json'}"] + [""] * (width - 2)
        lines.append(f"| {label} | " + " | ".join(body) + " |")
    return lines


def table(rows):
    first = lines_of("| method | seeds | params | embedding params | batch-1 ms | batch-32 ms | STS-B Spearman | "
                     "Multi30k test-2016 mean acc | Tatoeba deu acc (eng->deu / deu->eng) | fra | ces | Tatoeba mean acc |",
                     rows, cells)
    second = lines_of("| method | seeds | Multi30k test-2016 de acc (en->de / de->en) | fr | cs | mean acc |",
                      rows, multi30k_cells)
    notes = [NOTE] + ([UNRELIABLE] if any(" * |" in line for line in first[2:]) else [])
    return "\n".join(first + [""] + notes + [""] + second)


def selected_valid(run_dir):
    """The validation line with the best accuracy (the checkpoint test.py picks) from metrics.jsonl."""
    lines = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    valid = [line for line in lines if line.get("split") == "valid" and "accuracy" in line]
    if not valid:
        raise FileNotFoundError(f"{run_dir}/metrics.jsonl has no validation line")
    return max(valid, key=lambda line: line["accuracy"])


def valid_table(rows):
    lines = ["| method | step | Multi30k val de acc (en->de / de->en) | fr | cs | mean acc | teacher-student MSE (x1000) |",
             "|---|---|---|---|---|---|---|"]
    for label, dirs in rows:
        try:
            m = selected_valid(dirs[0])
        except FileNotFoundError:
            lines.append(f"| {label} | missing: {Path(dirs[0]) / 'metrics.jsonl'} | | | | | |")
            continue
        mse = f"{1000 * m['mse']:.2f}" if m.get("mse") is not None else "-"
        lines.append(f"| {label} | {m['step']} | " + " | ".join(lang_cell([m], lang) for lang in MULTI30K)
                     + f" | {pct(bench_mean(m, MULTI30K))} | {mse} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/multilingual/minilm")
    parser.add_argument("--seeds", nargs="*", default=[], metavar="ROOT",
                        help="more roots of the same pipeline (other seeds): mean ± std where a stage is in several")
    parser.add_argument("--ablation", default=None, help="run directory of ablation_pipeline.config (optional)")
    parser.add_argument("--valid", action="store_true", help="validation-split accuracies (metrics.jsonl) instead of test")
    parser.add_argument("--extra", nargs="*", default=[], metavar="LABEL=RUN_DIR",
                        help="more rows after the pipeline's, each a label and a run directory")
    args = parser.parse_args()
    for root in args.seeds:
        if not Path(root).is_dir():
            parser.error(f"--seeds {root}: no such directory")
    roots = [args.root] + args.seeds
    rows = [(label, [Path(root) / name for root in roots]) for label, name in ROWS]
    if args.ablation:
        rows += [(label, [Path(args.ablation) / name]) for label, name in ABLATIONS]
    for item in args.extra:
        label, sep, path = item.rpartition("=")
        if not sep or not label or not path:
            parser.error(f"--extra {item!r}: expected LABEL=RUN_DIR")
        rows.append((label, [Path(path)]))
    print(valid_table(rows) if args.valid else table(rows))


if __name__ == "__main__":
    main()
