"""Print a markdown table from the results.json (test split) / train_summary.json of run directories.

  python experiments/results_table.py runs/glue/SST-2/teacher runs/glue/SST-2/kd runs/glue/SST-2/baseline
The first directory is the reference (teacher) for "retained".
"""
import argparse
import json
from pathlib import Path


def row(run_dir, reference):
    results = json.loads((Path(run_dir) / "results.json").read_text())
    summary = json.loads((Path(run_dir) / "train_summary.json").read_text())
    metrics = {k: v for k, v in results["metrics"].items() if k not in ("examples", "loss")}
    main = next(iter(metrics.values()))
    retained = f"{100 * main / reference:.1f}%" if reference else "100%"
    return (f"| {Path(run_dir).name} | {', '.join(f'{k} {100 * v:.2f}' for k, v in metrics.items())} | {retained} | "
            f"{results['params']:,} | {results.get('latency_ms')} | {summary['steps']} |"), main


def main(dirs):
    print("| run | test metrics (%) | retained vs first row | params | CPU latency ms (batch 1) | optimizer steps |")
    print("|---|---|---|---|---|---|")
    reference = None
    for d in dirs:
        line, main_value = row(d, reference)
        reference = reference or main_value
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A markdown table of run directories' test results (results.json) "
                                                 "and training steps; the first directory is the reference for 'retained'.")
    parser.add_argument("dirs", nargs="+", metavar="RUN_DIR", help="run directories holding results.json and train_summary.json")
    main(parser.parse_args().dirs)
