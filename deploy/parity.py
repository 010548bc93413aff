"""Export a finished run's student and prove the exports still do the job: `export_run(run_dir)`. Classifiers and
sentence encoders (deploy/onnx_export.py); word-level and two-tower students are refused with one line.

The student's HF folder (DIR/student) is exported to ONNX fp32, ONNX int8 and a torch int8 copy
(deploy/onnx_export.py); each is run on the run's dev split next to the PyTorch student and compared: the largest
absolute output difference, the run's metrics (the run's own evaluator), and batch-1 and batch-32 CPU latency timed
side by side (efficiency/counts.py paired_latency: each input runs every variant in turn, so a passing load slows
them alike). Everything lands in DIR/export/ at once (built in a temp folder, then renamed), parity.json included.
A variant whose selecting metric ([train] metric) falls more than [export] max_metric_drop points below the student's
marks the export failed: the files stay, parity.json says "passed": false and why, and ExportParityError (exit 3)
names the numbers."""
import json
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from deploy.onnx_export import (Deployed, export_onnx, input_names, load_student, normalises, onnx_session,
                                quantize_onnx, quantize_torch, student_kind)
from efficiency.counts import BATCH, MIN_CPU_SHARE, paired_latency
from pretrained.st_dense import load_sentence_dense
from utils.paths import swap_in
from utils.errors import ConfigError, KDWorkerError

VARIANTS = ("pytorch", "onnx", "onnx_int8", "torch_int8")
FILES = {"pytorch": "student", "onnx": "export/model.onnx", "onnx_int8": "export/model_int8.onnx",
         "torch_int8": "export/torch_int8.pt"}
BATCH_LATENCY_RUNS = 10  # timed runs of the dev split's first BATCH examples per variant, after 3 untimed


class ExportParityError(KDWorkerError):
    """An exported model scored more than [export] max_metric_drop points below the PyTorch student on the dev split.
    Not bad input (exit 2) and not a crash: exit 3, with the export kept and marked failed in parity.json."""

    exit_code = 3


def cpu_name():
    """The CPU model, so a latency figure says where it came from."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_run_config(run_dir, overrides=()):
    from init.config import load_config
    path = Path(run_dir) / "config.ini"
    if not path.is_file():
        raise ConfigError(f"--run {run_dir}: no config.ini (not a run directory made by train.py)")
    return load_config(path, overrides)


def dev_examples(config, split):
    """The split's examples with their positions (what the run's formatter expects)."""
    from process.init_process import build_dataset
    dataset = build_dataset(config, split)
    return [dict(dataset[i], index=i) for i in range(len(dataset))]


def batches_of(config, examples, size, split):
    from process.init_process import formatter_class
    formatter = formatter_class(config)(config, split)
    return [formatter(examples[start:start + size]) for start in range(0, len(examples), size)]


def selecting_metric(config, evaluator, metrics):
    name = config.get("train", "metric") or getattr(evaluator, "main_metric", None)
    if name not in metrics:
        name = next(k for k in metrics if k not in ("examples", "loss"))
    return name


def test_metrics(config, split, variants, scorer, evaluator):
    """{variant: metrics} on the test split too, when it is another labelled file (not judged: so the exports sit
    beside the teacher and students, which are scored on test, in one picture and one card), else {}."""
    if split == "test" or not config.get("data", "test_file") or config.get("data", "test_file") == config.get("data", "valid_file"):
        return {}
    batches = batches_of(config, dev_examples(config, "test"), config.get("eval", "batch_size"), "test")
    if not batches or "labels" not in batches[0]:
        return {}
    labels = np.concatenate([b["labels"].numpy() for b in batches])
    return {v.name: {k: round(float(x), 6) for k, x in evaluator(scorer.outputs(v, batches, "test")[0], labels).items()}
            for v in variants}


class Scorer:
    """What the run's evaluator reads, from one variant: a classifier's logits; an encoder's [source | target |
    teacher source] embeddings, the multilingual evaluator's layout (model/parts/sentence_embedding.py), with the
    teacher's side computed once by the run's [distill] teacher and shared by every variant."""

    def __init__(self, kind, names, config):
        self.kind, self.names, self.teacher, self.teacher_rows = kind, list(names), None, {}
        if kind == "encoder":
            from model.parts.sentence_embedding import load_sentence_teacher
            self.teacher = load_sentence_teacher(config).eval()

    def sides(self, batch):
        """The tower inputs of a batch: the text (classifier), or the source and its translation (encoder)."""
        own = [{n: batch[n] for n in self.names}]
        return own if self.kind == "classifier" else own + [{n: batch["tgt_" + n] for n in self.names}]

    def teacher_side(self, batch, key):
        if key not in self.teacher_rows:
            from model.base import teacher_inputs
            with torch.inference_mode():
                self.teacher_rows[key] = self.teacher(**teacher_inputs(batch)).float().numpy()
        return self.teacher_rows[key]

    def outputs(self, variant, batches, split):
        """(the evaluator's input, the variant's raw outputs) over the batches, in order."""
        rows, raw = [], []
        for i, batch in enumerate(batches):
            outs = [variant.run(side) for side in self.sides(batch)]
            raw += outs
            rows.append(np.concatenate(outs + ([self.teacher_side(batch, (split, i))] if self.teacher else []), axis=1))
        return np.concatenate(rows), np.concatenate(raw)


class Variant:
    """One runnable form of the student: `run(tensors) -> np.ndarray` on a batch's input tensors."""

    def __init__(self, name, fn, numpy_inputs):
        self.name, self.fn, self.numpy_inputs = name, fn, numpy_inputs

    def feed(self, inputs):
        return {k: v.numpy() for k, v in inputs.items()} if self.numpy_inputs else inputs

    def run(self, inputs):
        with torch.inference_mode():
            out = self.fn(**self.feed(inputs))
        return out[0] if self.numpy_inputs else out.float().numpy()


def build_variants(deployed, folder, threads):
    """Write the three exports into `folder`; the four variants that run them. Session threads = torch's."""
    names = list(deployed.input_names)
    positional = lambda module: (lambda **kw: module(*[kw[n] for n in names]))
    quantized = Deployed(quantize_torch(deployed.model), deployed.kind, names, deployed.normalise, deployed.dense).eval()
    torch.save(quantized.model.state_dict(), folder / "torch_int8.pt")
    sessions = {}
    for name, file in (("onnx", "model.onnx"), ("onnx_int8", "model_int8.onnx")):
        sessions[name] = onnx_session(folder / file, threads)
    return [Variant("pytorch", positional(deployed), False),
            Variant("onnx", lambda **kw: sessions["onnx"].run(None, kw), True),
            Variant("onnx_int8", lambda **kw: sessions["onnx_int8"].run(None, kw), True),
            Variant("torch_int8", positional(quantized), False)]


def latencies(variants, single, batched):
    """{variant: {"batch_1": {median_ms, iqr_ms}, "batch_32": ...}} and the CPU share of each timing."""
    out, shares = {v.name: {} for v in variants}, {}
    for key, inputs in (("batch_1", single), (f"batch_{BATCH}", batched)):
        timed = paired_latency({v.name: (v.fn, [v.feed(x) for x in inputs]) for v in variants})
        shares[key] = timed.pop("cpu_share")
        for name, figures in timed.items():
            out[name][key] = figures
    return out, shares


def size_mb(path):
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin")]
    return round(sum(p.stat().st_size for p in files) / 2 ** 20, 2)


def judge(records, metric, mode, max_drop):
    """(passed, reason): every variant within max_drop points (x100) of the PyTorch student's metric."""
    reference = records["pytorch"]["metric"]
    for name in VARIANTS[1:]:
        value = records[name]["metric"]
        drop = 100 * ((reference - value) if mode == "max" else (value - reference))
        records[name]["drop_points"] = round(drop, 4)
        if drop > max_drop:
            return False, (f"{name} {metric} {value:.4f} is {drop:.2f} points below the PyTorch student's "
                           f"{reference:.4f} (more than [export] max_metric_drop = {max_drop:g})")
    return True, None


def export_run(run_dir, split="valid", max_metric_drop=None, threads=None):
    """Export DIR/student, check parity on `split`, write DIR/export/ (parity.json included); returns the parity
    record, passed or not (raise_if_failed turns a failure into exit 3)."""
    from init.registry import evaluator_list, lookup
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    student_dir = run_dir / "student"
    if not (student_dir / "config.json").is_file():
        raise ConfigError(f"--run {run_dir}: no exported student ({student_dir}/config.json); the run ends by "
                          "writing it when [output] export_student = true")
    kind = student_kind(student_dir)
    if kind == "classifier":  # its dev batches need no teacher (a path relative to where the run started, maybe)
        config = load_run_config(run_dir, ["distill.teacher="])
    if kind is None:
        raise ConfigError(f"--run {run_dir}: model '{config.get('model', 'model_name')}' exports neither a sequence "
                          "classifier nor a sentence encoder; the ONNX export covers those two (word-level and "
                          "two-tower students keep their folder)")
    max_drop = config.get("export", "max_metric_drop") if max_metric_drop is None else max_metric_drop
    if max_drop < 0:
        raise ConfigError(f"--max_metric_drop {max_drop}: must be >= 0 (points)")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    model = load_student(student_dir, kind)
    dense = load_sentence_dense(student_dir) if kind == "encoder" else None  # a projection to the teacher's width
    deployed = Deployed(model, kind, input_names(model, tokenizer.model_input_names), normalises(student_dir),
                        dense).eval()
    examples = dev_examples(config, split)
    if not examples:
        raise ConfigError(f"[data] {split}_file: no examples to check the export on")
    batches = batches_of(config, examples, config.get("eval", "batch_size"), split)
    labels = np.concatenate([b["labels"].numpy() for b in batches]) if "labels" in batches[0] else None
    if labels is None:
        raise ConfigError(f"[data] {split}_file: has no labels, so the exports' metric cannot be compared")
    scorer = Scorer(kind, deployed.input_names, config)
    evaluator = lookup(evaluator_list, config, "eval", "evaluator")(config)

    folder = Path(tempfile.mkdtemp(prefix=".export.", dir=run_dir))
    try:
        export_onnx(deployed, scorer.sides(batches[0])[0], folder / "model.onnx")
        quantize_onnx(folder / "model.onnx", folder / "model_int8.onnx")
        variants = build_variants(deployed, folder, threads)
        scored = {v.name: scorer.outputs(v, batches, split) for v in variants}
        outputs = {name: raw for name, (_, raw) in scored.items()}
        metrics = {name: {k: round(float(x), 6) for k, x in evaluator(scores, labels).items()}
                   for name, (scores, _) in scored.items()}
        metric = selecting_metric(config, evaluator, metrics["pytorch"])
        test = test_metrics(config, split, variants, scorer, evaluator)
        n_single = config.get("eval", "latency_batches") or 20
        single = [scorer.sides(b)[0] for b in batches_of(config, examples[:n_single], 1, split)]
        first = scorer.sides(batches_of(config, examples[:BATCH], BATCH, split)[0])[0]  # one batch: spread is noise
        batched = [first] * (3 + BATCH_LATENCY_RUNS)
        timed, shares = latencies(variants, single, batched)
        records = {}
        for name in VARIANTS:
            file = FILES[name]
            records[name] = {"file": file, "metrics": metrics[name], "metric": metrics[name][metric],
                             "max_abs_diff": float(np.abs(outputs[name] - outputs["pytorch"]).max()),
                             "latency_ms": timed[name],
                             "size_mb": size_mb(student_dir if name == "pytorch" else folder / Path(file).name)}
            if test:
                records[name]["test_metrics"] = test[name]
                records[name]["test_metric"] = test[name].get(metric)
        passed, reason = judge(records, metric, config.get("train", "metric_mode"), max_drop)
        parity = {"passed": passed, "reason": reason, "split": split, "examples": len(examples), "metric": metric,
                  "metric_mode": config.get("train", "metric_mode"), "max_metric_drop": max_drop,
                  "output": "logits" if kind == "classifier" else "sentence embedding", "inputs": list(deployed.input_names),
                  "threads": threads, "cpu": cpu_name(), "latency_cpu_share": shares,
                  "latency_reliable": min(shares.values()) >= MIN_CPU_SHARE,
                  "onnxruntime": __import__("onnxruntime").__version__, "torch": torch.__version__,
                  "variants": records}
        (folder / "parity.json").write_text(json.dumps(parity, indent=2) + "\n")
        swap_in(folder, run_dir / "export")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return parity


def raise_if_failed(run_dir, parity):
    if not parity["passed"]:
        raise ExportParityError(f"{Path(run_dir) / 'export' / 'parity.json'}: the export failed its parity check: "
                                f"{parity['reason']}")


def parity_table(parity):
    """Markdown table of a parity record: one row per variant."""
    metric = parity["metric"]
    rows = [f"| variant | {metric} | drop (points) | max abs diff | batch-1 ms | batch-{BATCH} ms | size MB |",
            "|---|---|---|---|---|---|---|"]
    for name in VARIANTS:
        r = parity["variants"][name]
        lat = lambda key: f"{r['latency_ms'][key]['median_ms']:.3f} ± {r['latency_ms'][key]['iqr_ms']:.3f}"
        rows.append(f"| {name} | {r['metric']:.4f} | {r.get('drop_points', 0.0):.2f} | {r['max_abs_diff']:.2e} | "
                    f"{lat('batch_1')} | {lat(f'batch_{BATCH}')} | {r['size_mb']:.1f} |")
    verdict = "passed" if parity["passed"] else f"FAILED: {parity['reason']}"
    if not parity.get("latency_reliable", True):
        verdict += (f"; latencies timed with {min(parity['latency_cpu_share'].values()):.0%} of the cores (other jobs "
                    "running?): not reliable, measure again on an idle machine")
    rows.append(f"\n{parity['split']} split, {parity['examples']} examples; latency median ± IQR, {parity['threads']} "
                f"threads, {parity['cpu']}; parity {verdict}")
    return "\n".join(rows)
