"""The summary picture of a pipeline run: DIR/summary.png.

Why: the table a pipeline prints says where each stage ended; the picture says what the trade was and how it got
there: (1) test score against batch-1 latency of every tested stage, with the exported ONNX / ONNX int8 files where
an export ran (from export/parity.json: their test-split score, timed in the export's own session beside the PyTorch
student, drawn hollow); (2) the training loss and (3) the dev metric of every stage against
the step, from metrics.jsonl. A piece whose file is missing is left out, never an error: every run gets a picture."""
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first: no display on servers)

from deploy.model_card import atomic_write, read_config, read_json, selecting_metric, tested  # noqa: E402

EXPORTED = (("onnx", "onnx"), ("onnx_int8", "int8"))  # parity.json variant, label suffix


def default_stages(pipeline_dir):
    """The subfolders that hold a run (results.json or train_summary.json), sorted by name."""
    return sorted(p.name for p in Path(pipeline_dir).iterdir()
                  if p.is_dir() and ((p / "results.json").is_file() or (p / "train_summary.json").is_file()))


def read_curves(run_dir, metric):
    """({step: training loss}, {step: dev metric}) from metrics.jsonl; a later record of a step (a resume) wins."""
    loss, dev = {}, {}
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return loss, dev
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), (int, float)):
            continue
        if record.get("split") == "valid":
            if isinstance(record.get(metric), (int, float)):
                dev[record["step"]] = record[metric]
        elif "split" not in record and isinstance(record.get("loss"), (int, float)):
            loss[record["step"]] = record["loss"]
    return loss, dev


def _points(stage, run_dir):
    """[(label, latency ms, score, hollow)] of a stage: its test result, then its exported files."""
    test = tested(run_dir)
    metric = selecting_metric(read_config(run_dir), test.get("metrics"))
    points = []
    score = (test.get("metrics") or {}).get(metric)
    if isinstance(score, (int, float)) and isinstance(test.get("latency_ms"), (int, float)):
        points.append((stage, test["latency_ms"], score, False))
    parity = read_json(Path(run_dir) / "export" / "parity.json") or {}
    for variant, suffix in EXPORTED:
        v = (parity.get("variants") or {}).get(variant) or {}
        latency = ((v.get("latency_ms") or {}).get("batch_1") or {}).get("median_ms")
        # the test score (what the other points show); parity checked on test itself: its metric
        score = v.get("test_metric") if parity.get("split") != "test" else v.get("metric")
        if isinstance(score, (int, float)) and isinstance(latency, (int, float)):
            points.append((f"{stage} {suffix}", latency, score, True))
    return metric, points


def write_summary_png(pipeline_dir, stages=None):
    """Draw pipeline_dir/summary.png (see the module docstring) and return its path. `stages`: stage names in order
    (default: default_stages). Written to a temp file in the folder, then moved over the old one (os.replace)."""
    pipeline_dir = Path(pipeline_dir)
    stages = list(stages) if stages is not None else default_stages(pipeline_dir)
    fig, (trade, losses, devs) = plt.subplots(1, 3, figsize=(16, 4.8))
    metrics = set()
    try:
        for i, stage in enumerate(stages):
            run_dir, color = pipeline_dir / stage, f"C{i % 10}"
            if not run_dir.is_dir():
                continue
            metric, points = _points(stage, run_dir)
            for j, (label, latency, score, hollow) in enumerate(points):
                trade.scatter([latency], [score], s=60, marker="D" if hollow else "o", edgecolors=color,
                              facecolors="none" if hollow else color)
                trade.annotate(label, (latency, score), textcoords="offset points", xytext=(5, 5 - 11 * j), fontsize=9)
            metrics.update([metric] if points else [])
            loss, dev = read_curves(run_dir, metric)
            if loss:
                losses.plot(sorted(loss), [loss[s] for s in sorted(loss)], color=color, label=stage)
            if dev:
                devs.plot(sorted(dev), [dev[s] for s in sorted(dev)], color=color, marker="o",
                          label=f"{stage} {metric}")
        trade.set(title="test score vs latency (hollow: exported, parity.json)", xlabel="latency ms (batch 1)",
                  ylabel=", ".join(sorted(m for m in metrics if m)) or "score")
        losses.set(title="training loss", xlabel="step", ylabel="loss")
        devs.set(title="dev metric", xlabel="step", ylabel="valid score")
        for ax, empty in ((trade, "no tested stage"), (losses, "no training log"), (devs, "no dev evaluation")):
            if ax.has_data():
                ax.grid(alpha=0.3)
                if ax is not trade:
                    ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="gray")
        fig.suptitle(str(pipeline_dir.resolve().name))
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=100)
    finally:
        plt.close(fig)
    target = pipeline_dir / "summary.png"
    atomic_write(target, image.getvalue())
    return target
