"""The model card of a run: DIR/student/README.md, beside the exported student.

Why: users distil in order to deploy, and the exported folder travels alone (to a server, a hub, a colleague). The card
says what it is (method and paper, architecture), where it came from (teacher, data, config), what it kept (test score
against the teacher and the no-teacher twin, latency, size, the ONNX/int8 parity check when an export ran) and how to
load it. Every number is read from the run's files; a field whose file is missing is left out, never made up."""
import json
import os
import re
import tempfile
from pathlib import Path

SKIPPED = ("examples", "loss")
OWN_FORMAT = "kdw_"  # model_type prefix of the students saved by model/parts/plain_export.py


def read_json(path):
    """The parsed JSON object, or None when the file is missing, unreadable or not an object (a card or a plot never
    fails a run on it)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_config(run_dir):
    """The run's resolved config (config.ini) as an init.config Config, or None."""
    from init.config import load_config
    from utils.errors import ConfigError
    try:
        return load_config(Path(run_dir) / "config.ini")
    except (ConfigError, OSError, ValueError):  # absent, or written by another version of the code
        return None


def tested(run_dir):
    """The run's test record: results.json, else the "test" part of train_summary.json; {} when untested."""
    summary = read_json(Path(run_dir) / "train_summary.json") or {}
    return read_json(Path(run_dir) / "results.json") or summary.get("test") or {}


def selecting_metric(config, metrics):
    """The metric that selects: [train] metric, else the evaluator's main metric, else the first key of `metrics`
    that is not examples/loss; None when there is none."""
    name = config.get("train", "metric") if config else ""
    if not name and config:
        from init.registry import evaluator_list
        from utils.errors import ConfigError
        try:
            name = evaluator_list[config.get("eval", "evaluator")](config).main_metric
        except (KeyError, ConfigError, OSError, ValueError):
            name = ""
    if name in (metrics or {}):
        return name
    return next((k for k in (metrics or {}) if k not in SKIPPED), name or None)


def _num(value, fmt):
    """A number in `fmt`, or an empty cell when the file had none."""
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _parity(run_dir):
    """The export's parity check (export/parity.json, written by tools/export.py), when there is one."""
    parity = read_json(Path(run_dir) / "export" / "parity.json")
    if not parity:
        return []
    verdict = "passed" if parity.get("passed") else f"failed ({parity.get('reason') or 'see parity.json'})"
    where = ", ".join(f"{k} {parity[k]}" for k in ("split", "examples", "threads", "cpu") if parity.get(k) is not None)
    metric = parity.get("metric")
    lines = ["## Exported files (export/parity.json)", "",
             f"Parity check: **{verdict}**; {where}; allowed {metric} drop: {parity.get('max_metric_drop')}.", "",
             f"| variant | file | {metric} | max abs diff | latency ms (batch 1) | latency ms (batch 32) | size MB |",
             "|---|---|---|---|---|---|---|"]
    for name, v in (parity.get("variants") or {}).items():
        lat = v.get("latency_ms") or {}
        b1, b32 = ((lat.get(b) or {}).get("median_ms") for b in ("batch_1", "batch_32"))
        lines.append(f"| {name} | {v.get('file', '')} | {_num(v.get('metric'), '.4f')} "
                     f"| {_num(v.get('max_abs_diff'), '.3g')} | {_num(b1, '.3f')} | {_num(b32, '.3f')} "
                     f"| {_num(v.get('size_mb'), '.1f')} |")
    return lines + [""]


def _how_to_load(run_dir, student, hf):
    """Commands with the real path: transformers, then the pipeline, sentence-transformers, onnxruntime if they fit."""
    path = json.dumps(str(student))
    if str(hf.get("model_type", "")).startswith(OWN_FORMAT):  # a word-level student transformers cannot load
        return _how_to_load_own(run_dir, student, path)
    classifier = any(a.endswith("ForSequenceClassification") for a in hf.get("architectures") or [])
    auto = "AutoModelForSequenceClassification" if classifier else "AutoModel"
    code = [f"from transformers import AutoTokenizer, {auto}", f"tokenizer = AutoTokenizer.from_pretrained({path})",
            f"model = {auto}.from_pretrained({path})"]
    if classifier:
        code += ["", "from transformers import pipeline", f'classifier = pipeline("text-classification", model={path})',
                 'print(classifier("what a lovely film"))']
    if (student / "modules.json").is_file():
        code += ["", "from sentence_transformers import SentenceTransformer", f"encoder = SentenceTransformer({path})",
                 'embeddings = encoder.encode(["what a lovely film"])']
    onnx = Path(run_dir) / "export" / "model.onnx"
    if onnx.is_file():
        code += ["", "import onnxruntime", f"session = onnxruntime.InferenceSession({json.dumps(str(onnx))})",
                 'inputs = tokenizer(["what a lovely film"], return_tensors="np")',
                 "output, = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})"]
    return ["## How to load", "", "```python", *code, "```", ""]


def _how_to_load_own(run_dir, student, path):
    """Word-level students (BiLSTM, ELMo, LTD) are our own format: predict.py labels text with them; an LTD student
    over the teacher's pieces is also a plain sentence-transformers model."""
    lines = ["## How to load", "", "A word-level student in this project's format (config.json + model.safetensors + "
             "vocab.json); label new text with it from the repository:", "", "```bash",
             f"python predict.py --run {json.dumps(str(Path(run_dir)))} --input texts.txt", "```", ""]
    if (student / "modules.json").is_file():
        lines += ["Its sentence embedding loads without this project's code:", "", "```python",
                  "from sentence_transformers import SentenceTransformer", f"encoder = SentenceTransformer({path})",
                  'embeddings = encoder.encode(["what a lovely film"])', "```", "",
                  "The same embeddings several times faster (docs/RESULTS.md, static students), from the repository:",
                  "", "```python", "from deploy.static_encoder import StaticEncoder",
                  f"embeddings = StaticEncoder({path}).encode([\"what a lovely film\"])", "```", ""]
    return lines


def atomic_write(path, data):
    """Write text or bytes to a temp file beside `path`, then os.replace it over `path`: a reader sees the old file or
    the new one, and a failure removes the temp file and leaves the old one as it was. Mode: as open() would give."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide a card meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _facts(run_dir, config, hf, summary, metric, distilled, teacher, teacher_test):
    """The card's bullet list: teacher, model, labels, data, config, training."""
    get = (lambda s, k: config.get(s, k) or "") if config else (lambda s, k: "")
    lines = []
    if distilled:
        score = (teacher_test.get("metrics") or {}).get(metric)
        lines += [f"- **Teacher**: `{teacher}`" + (f", {summary['teacher_params']:,} parameters"
                                                   if summary.get("teacher_params") else "")
                  + (f", test {metric} {score:.4f}" if score is not None else "")]
    arch = ", ".join(f"{label} {hf[k]}" for k, label in (("model_type", "type"), ("num_hidden_layers", "layers"),
                                                        ("hidden_size", "hidden")) if hf.get(k) is not None)
    params = f"{summary['params']:,} parameters" if summary.get("params") else ""
    described = [x for x in ((hf.get("architectures") or [""])[0], arch, params) if x]
    lines += [f"- **{'Student' if distilled else 'Model'}**: " + ", ".join(described)] if described else []
    if hf.get("id2label"):
        lines += ["- **Labels**: " + ", ".join(str(hf["id2label"][k]) for k in sorted(hf["id2label"], key=int))]
    data = [f"task {get('data', 'task')}"] if get("data", "task") else []
    data += [f"{k} `{get('data', k)}`" for k in ("train_file", "valid_file", "test_file") if get("data", k)]
    data += [f"heldout_every {get('data', 'heldout_every')} (valid and test: held-out rows of train_file, never "
             "trained on)"] if get("data", "heldout_every") else []
    lines += ["- **Data**: " + ", ".join(data)] if data else []
    if summary.get("config"):
        lines += [f"- **Config**: `{summary['config']}`; resolved: `config.ini` in the run folder `{run_dir}` "
                  "(`../config.ini` from this card)"]
    if summary.get("best_metric") is not None:
        lines += [f"- **Training**: best valid {metric or 'score'} {summary['best_metric']} at step "
                  f"{summary.get('best_step')} of {summary.get('steps')}"]
    return lines


def _results(metric, rows):
    """The results table (rows: name, test record, batch-1 latency, params; the first is the teacher, the second
    this model, the third the twin), then retention and the gain over the twin."""
    scores = [(rec.get("metrics") or {}).get(metric) for _, rec, _, _ in rows]
    lines = ["## Results (test split)", "", f"| model | {metric} | latency ms (batch 1) | params |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {_num(score, '.4f')} | {_num(lat, '.3f')} | {_num(params, ',')} |"
              for (name, rec, lat, params), score in zip(rows, scores) if rec or lat or params]
    (teacher, student, twin), lines = scores, lines + [""]
    if student is not None and teacher:
        lines += [f"- Retention: {student / teacher * 100:.2f}% of the teacher's {metric}"]
    if student is not None and twin is not None:
        lines += [f"- Gain over the twin: {(student - twin) * 100:+.2f} points of {metric}"]
    return lines + [""]


def render_card(run_dir, twin_dir=None):
    """The card's markdown text (write_model_card writes it)."""
    from init.registry import model_list
    run_dir = Path(run_dir)
    student, config, test = run_dir / "student", read_config(run_dir), tested(run_dir)
    hf, summary = read_json(student / "config.json") or {}, read_json(run_dir / "train_summary.json") or {}
    method = config.get("model", "model_name") if config else ""
    teacher = (config.get("distill", "teacher") if config else "") or ""
    paper = getattr(model_list.get(method), "paper", None)
    distilled = bool(teacher) and (paper is not None or summary.get("teacher_params") is not None)
    how = (f"distilled with `{method}`" + (f" ({paper})" if paper else "")) if distilled else \
        "fine-tuned on labels (no teacher)"
    metric = selecting_metric(config, test.get("metrics"))
    teacher_test = tested(Path(teacher).parent) if distilled else {}
    lines = [f"# {run_dir.resolve().name}: {how}", ""]
    lines += _facts(run_dir, config, hf, summary, metric, distilled, teacher, teacher_test) + [""]
    if metric and test:
        twin = tested(twin_dir) if twin_dir else {}
        lines += _results(metric, [
            ("teacher", teacher_test, test.get("teacher_latency_ms") or teacher_test.get("latency_ms"),
             summary.get("teacher_params") or teacher_test.get("params")),
            ("student (this model)" if distilled else "this model", test, test.get("latency_ms"),
             summary.get("params") or test.get("params")),
            ("twin (same student, no teacher)", twin, twin.get("latency_ms"), twin.get("params"))])
    lines += _parity(run_dir) + _how_to_load(run_dir, student, hf)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def write_model_card(run_dir, twin_dir=None):
    """Write run_dir/student/README.md atomically (a temp file in the folder, then os.replace) when the run exported a
    student (student/config.json); returns its path, or None when there is no student. twin_dir: the run dir of the
    same student trained without a teacher, for the gain over it."""
    target = Path(run_dir) / "student" / "README.md"
    if not (target.parent / "config.json").is_file():
        return None
    atomic_write(target, render_card(run_dir, twin_dir))
    return target
