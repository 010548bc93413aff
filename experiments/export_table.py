"""Markdown table of what int8 buys (docs/PERFORMANCE.md): per exported run, each variant's dev metric, its change
against the PyTorch student, and its batch-1 and batch-32 latency with the speed-up over the PyTorch student, all
from the run's export/parity.json (tools/export.py: the variants timed interleaved in one session).

  python experiments/export_table.py teacher=runs/sst2/teachers/SST-2 kd=runs/sst2/s1/SST-2/kd ...
"""
import argparse
import json
from pathlib import Path

VARIANTS = ("pytorch", "onnx", "onnx_int8", "torch_int8")


def table(runs):
    """runs: [(label, run directory)] -> markdown lines."""
    lines = ["| model | variant | dev metric | change (points) | batch-1 ms | speed-up | batch-32 ms | speed-up | size MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, run in runs:
        parity = json.loads((Path(run) / "export" / "parity.json").read_text())
        base = parity["variants"]["pytorch"]
        ms = lambda v, key: v["latency_ms"][key]["median_ms"]
        for name in VARIANTS:
            v = parity["variants"][name]
            change = 100 * (v["metric"] - base["metric"])
            lines.append(f"| {label} | {name} | {parity['metric']} {v['metric']:.4f} | {change:+.2f} | "
                         f"{ms(v, 'batch_1'):.2f} ± {v['latency_ms']['batch_1']['iqr_ms']:.2f} | "
                         f"{ms(base, 'batch_1') / ms(v, 'batch_1'):.2f}x | "
                         f"{ms(v, 'batch_32'):.1f} ± {v['latency_ms']['batch_32']['iqr_ms']:.1f} | "
                         f"{ms(base, 'batch_32') / ms(v, 'batch_32'):.2f}x | {v['size_mb']:.1f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR, each with an export/parity.json")
    args = parser.parse_args()
    runs = [tuple(item.split("=", 1)) if "=" in item else (Path(item).name, item) for item in args.runs]
    print("\n".join(table(runs)))


if __name__ == "__main__":
    main()
