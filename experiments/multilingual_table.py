"""Markdown table of the multilingual runs (config/multilingual/minilm_pipeline.config, ablation_pipeline.config):
per method its student parameters, Tatoeba retrieval accuracy for deu/fra/ces (mean of eng->x and x->eng, the
two directions in brackets), their mean, and STS-B Spearman, read from <root>/<stage>/results.json.
--valid prints the same accuracies on the validation split instead (Multi30k val: in the training data's domain,
unlike Tatoeba), from the evaluation in <root>/<stage>/metrics.jsonl that picked the tested checkpoint.

  python experiments/multilingual_table.py [--root runs/multilingual/minilm] [--ablation runs/multilingual/ablation] [--valid]
      [--extra "LABEL=RUN_DIR" ...]   (rows for runs outside the pipeline's layout, e.g. another budget)
"""
import argparse
import json
from pathlib import Path

LANGS = ("deu", "fra", "ces")
VALID_LANGS = ("de", "fr", "cs")  # Multi30k val sets are named by their files' suffixes
# (row label, run directory under the root)
ROWS = [
    ("teacher applied directly (all-MiniLM-L6-v2)", "teacher_direct"),
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


def pct(value):
    return f"{100 * value:.1f}" if value is not None else "-"


def lang_cells(m, langs):
    """Per language 'mean (there / back)' of the two retrieval directions, and the mean over languages."""
    cells, means = [], []
    for lang in langs:
        there, back = m.get(f"{lang}_src2tgt"), m.get(f"{lang}_tgt2src")
        if there is None or back is None:
            cells.append("-")
            continue
        means.append((there + back) / 2)
        cells.append(f"{pct(means[-1])} ({pct(there)} / {pct(back)})")
    return cells, (sum(means) / len(means) if means else None)


def row(label, results):
    m = results["metrics"]
    cells, mean = lang_cells(m, LANGS)
    sts = m.get("STS-B-dev_spearman", m.get("spearman"))
    return f"| {label} | {results['params']:,} | " + " | ".join(cells) + f" | {pct(mean)} | {pct(sts)} |"


def selected_valid(run_dir):
    """The validation line with the best accuracy (the checkpoint test.py picks) from metrics.jsonl."""
    lines = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    valid = [line for line in lines if line.get("split") == "valid" and "accuracy" in line]
    if not valid:
        raise FileNotFoundError(f"{run_dir}/metrics.jsonl has no validation line")
    return max(valid, key=lambda line: line["accuracy"])


def valid_table(runs):
    lines = ["| method | step | Multi30k val de acc (en->de / de->en) | fr | cs | mean acc | teacher-student MSE (x1000) |",
             "|---|---|---|---|---|---|---|"]
    for label, path in runs:
        try:
            m = selected_valid(path)
        except FileNotFoundError:
            lines.append(f"| {label} | missing: {Path(path) / 'metrics.jsonl'} | | | | | |")
            continue
        cells, mean = lang_cells(m, VALID_LANGS)
        mse = f"{1000 * m['mse']:.2f}" if m.get("mse") is not None else "-"
        lines.append(f"| {label} | {m['step']} | " + " | ".join(cells) + f" | {pct(mean)} | {mse} |")
    return "\n".join(lines)


def table(runs):
    lines = ["| method | student params | Tatoeba deu acc (eng->deu / deu->eng) | fra | ces | mean acc | STS-B Spearman |",
             "|---|---|---|---|---|---|---|"]
    for label, path in runs:
        try:
            lines.append(row(label, json.loads((Path(path) / "results.json").read_text())))
        except FileNotFoundError:
            lines.append(f"| {label} | missing: {Path(path) / 'results.json'} | | | | | |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/multilingual/minilm")
    parser.add_argument("--ablation", default=None, help="run directory of ablation_pipeline.config (optional)")
    parser.add_argument("--valid", action="store_true", help="validation-split accuracies (metrics.jsonl) instead of test")
    parser.add_argument("--extra", nargs="*", default=[], metavar="LABEL=RUN_DIR",
                        help="more rows after the pipeline's, each a label and a run directory")
    args = parser.parse_args()
    runs = [(label, Path(args.root) / name) for label, name in ROWS]
    if args.ablation:
        runs += [(label, Path(args.ablation) / name) for label, name in ABLATIONS]
    for item in args.extra:
        label, sep, path = item.rpartition("=")
        if not sep or not label or not path:
            parser.error(f"--extra {item!r}: expected LABEL=RUN_DIR")
        runs.append((label, Path(path)))
    print(valid_table(runs) if args.valid else table(runs))


if __name__ == "__main__":
    main()
