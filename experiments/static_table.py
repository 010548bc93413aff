"""Markdown table of sentence encoders and static students measured side by side in one run: the teacher, Model2Vec
models (experiments/model2vec_distill.py), our runs (`ltd` / `ltd_embedding` with segmenter = pieces export a
sentence-transformers folder under RUN_DIR/student) and word-level classifier students that give no sentence
embedding (Distilled-BiLSTM, the ELMo student), on parameters, encoding speed, STS-B and SST-2.

  python experiments/static_table.py --teacher sentence-transformers/all-MiniLM-L6-v2 \\
      --m2v m2v256=models/m2v_minilm_pca256 m2v_full=models/m2v_minilm_full \\
      --run ltd_emb=runs/ltd_embedding/STS-B --run ltd=runs/ltd/SST-2 --sst2_run ltd=runs/ltd/SST-2 \\
      --clf bilstm=runs/glue/SST-2/distilled_bilstm --clf elmo=runs/glue/SST-2/elmo_bilstm \\
      --clf_stsb elmo=runs/glue/STS-B/elmo_bilstm --threads 2 --json runs/static_table.json

Rows: the teacher first (--teacher: a SentenceTransformer folder, a run directory whose student/ is one, or a name
pretrained/loading.py resolves offline, e.g. the packaged all-MiniLM-L6-v2), then every --m2v LABEL=DIR,
--run LABEL=RUN_DIR, --fast LABEL=RUN_DIR (the same student folder, encoded by deploy/static_encoder.py instead of
sentence-transformers: the same embeddings, less work per sentence) and --clf LABEL=RUN_DIR in the order given on
the command line. A --clf RUN_DIR is a
single-sentence word-level classifier run of train.py (distilled_bilstm, bilstm, elmo_bilstm, elmo_bilstm_cls; an
ltd classifier too), loaded by predict.py's load_run: its config.ini and best checkpoint, its words rebuilt from
the run's training split.

Columns:
- parameters: a Model2Vec model's embedding rows x width; a SentenceTransformer's parameter count (sum of numel);
  a --clf row's student as predict.py loads it (sum of numel, the ELMo student's frozen biLM included);
- sentences/s: the first --n_sentences STS-B dev sentences (each row's sentence1 then sentence2, in file order)
  encoded from text, tokenisation included, in batches of 64 with torch threads = --threads (and the tokenizers'
  Rust pool, RAYON_NUM_THREADS, set to the same unless the environment sets it). Timed with a plain
  time.perf_counter loop, not torch.utils.benchmark.Timer (which runs warm-up calls of its own before every
  measurement and would break the interleaving; efficiency/counts.py's paired_latency makes the same choice):
  --warmup untimed rounds, then --rounds timed rounds, each round encoding the sentences once with every model in
  turn (round-robin, the starting model rotating each round), so that a load on the machine that comes and goes
  slows every model alike. A --clf row runs the same sentences from text through its classifier: the student's own
  word tokenisation and padding (the formatter's, without the teacher's BERT inputs a distillation run's formatter
  adds), then its forward to logits. Median and interquartile range over the rounds;
- speed-up: median sentences/s over the teacher's;
- STS-B dev Spearman x 100 of cos(e(sentence1), e(sentence2)) against the gold score (evaluator/metrics.py's
  spearman, scipy's spearmanr; a zero embedding, e.g. a text of unknown words only, has cosine 0), over all rows
  of --stsb (GLUE format, columns found by header name: sentence1, sentence2, score). A --clf row has no embedding:
  "(own head)" is the Spearman of the regression head of its STS-B run, --clf_stsb LABEL=RUN_DIR,
  RUN_DIR/results.json metrics.spearman (the split that run was tested on); "-" without one;
- SST-2 dev accuracy %: "(LR)": scikit-learn's LogisticRegression (C=1.0, max_iter=1000, random_state=0) fit on the
  frozen embeddings of --sst2_train (its first --sst2_max_train rows) and scored on --sst2_dev; "(own head)": a row
  named by --sst2_run LABEL=RUN_DIR, and every --clf row, takes the method's own classifier's accuracy,
  RUN_DIR/results.json metrics.accuracy (the split that run was tested on).

--skip_speed and --skip_sst2 leave those columns out of the measurement ("-" in the table). --json OUT writes every
raw number (per-round speeds included) through a temp file renamed over OUT. A missing folder or file ends the run
before anything loads, with one line naming the argument and the path."""
import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

BATCH = 64
LR = {"C": 1.0, "max_iter": 1000, "random_state": 0}
KINDS = {"teacher": "teacher", "model2vec": "Model2Vec", "run": "run", "fast": "run, our encoder",
         "classifier": "word-level classifier"}
ARGS = {"teacher": "--teacher", "model2vec": "--m2v", "run": "--run", "fast": "--fast",
        "classifier": "--clf"}  # kind -> its argument


@dataclass
class Row:
    label: str
    kind: str  # teacher | model2vec | run | classifier
    spec: str  # what the command line said, for messages
    path: str
    sst2_run: Optional[Path] = None  # RUN_DIR whose results.json gives the own-head SST-2 accuracy
    stsb_run: Optional[Path] = None  # a classifier's STS-B RUN_DIR whose results.json gives its own-head Spearman
    encode: Optional[Callable] = None  # list of texts -> (n, d) float array (a classifier: its logits)
    params: Optional[int] = None
    width: Optional[int] = None
    numbers: dict = field(default_factory=dict)


def fail(arg, value, what):
    raise SystemExit(f"{arg} {value}: {what}")


def split_spec(arg, spec):
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        fail(arg, spec, "expected LABEL=PATH")
    return label, path


# ---------------------------------------------------------------------------------------------------- arguments


def need_dir(arg, spec, path):
    if not Path(path).is_dir():
        fail(arg, spec, "no such folder")


def need_file(arg, spec, path):
    if not Path(path).is_file():
        fail(arg, spec, f"no such file {path}" if str(path) != str(spec) else "no such file")


def teacher_row(spec):
    """--teacher NAME or LABEL=NAME -> a Row whose path SentenceTransformer can load offline."""
    from pretrained.loading import looks_local, resolve_model_path
    from utils.errors import ConfigError
    from utils.paths import REPO_ROOT
    label, sep, name = spec.partition("=")
    if not sep:
        label, name = "teacher", spec
    if looks_local(name) and not any((base / name).is_dir() for base in (Path.cwd(), REPO_ROOT)):
        fail("--teacher", spec, "no such folder")
    try:
        path = resolve_model_path(name, "--teacher", markers=("modules.json", "config.json"))
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    return Row(label, "teacher", spec, path)


def model_rows(models):
    """[(kind, 'LABEL=PATH')] from --m2v / --run / --clf, in command-line order, each checked on disk."""
    rows = []
    for kind, spec in models:
        arg = ARGS[kind]
        label, path = split_spec(arg, spec)
        need_dir(arg, spec, path)
        row = Row(label, kind, spec, path)
        if kind in ("run", "fast"):
            student = Path(path) / "student"
            if not (student / "modules.json").is_file():
                fail(arg, spec, f"no such file {student / 'modules.json'} (a sentence-transformers student: ltd and "
                                "ltd_embedding runs with segmenter = pieces export one)")
            row.path = str(student)
        if kind == "classifier":  # predict.py reads config.ini; the table reads the run's own accuracy
            need_file(arg, spec, Path(path) / "config.ini")
            row.sst2_run = Path(path)
            row.numbers["sst2_accuracy"] = own_head(arg, spec, path, "accuracy")
        rows.append(row)
    return rows


def own_head(arg, spec, run_dir, metric):
    """metrics.<metric> x 100 from RUN_DIR/results.json (accuracy, or an STS-B run's spearman)."""
    results = Path(run_dir) / "results.json"
    need_file(arg, spec, results)
    try:
        value = json.loads(results.read_text())["metrics"][metric]
    except (ValueError, KeyError, TypeError):
        fail(arg, spec, f"{results} has no metrics.{metric}")
    return 100 * float(value)


def attach_sst2_runs(rows, specs):
    """--sst2_run LABEL=RUN_DIR (or LABEL alone: that --run's own directory) onto the --run / --fast row of that label."""
    runs = {row.label: row for row in rows if row.kind in ("run", "fast")}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if label not in runs:
            fail("--sst2_run", spec, f"no --run or --fast row labelled {label}")
        path = path if sep else str(Path(runs[label].path).parent)
        need_dir("--sst2_run", spec, path)
        runs[label].sst2_run = Path(path)
        runs[label].numbers["sst2_accuracy"] = own_head("--sst2_run", spec, path, "accuracy")


def attach_stsb_runs(rows, specs):
    """--clf_stsb LABEL=RUN_DIR: the --clf row of that label takes its STS-B Spearman from that regression run."""
    classifiers = {row.label: row for row in rows if row.kind == "classifier"}
    for spec in specs:
        label, path = split_spec("--clf_stsb", spec)
        if label not in classifiers:
            fail("--clf_stsb", spec, f"no --clf row labelled {label}")
        need_dir("--clf_stsb", spec, path)
        classifiers[label].stsb_run = Path(path)
        classifiers[label].numbers["stsb_spearman"] = own_head("--clf_stsb", spec, path, "spearman")


def read_tsv(arg, path, columns, limit=None):
    """{column: [values]} of a GLUE tsv, columns found by header name (no quoting: GLUE's quotes are text)."""
    need_file(arg, path, path)
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        missing = [c for c in columns if c not in header]
        if missing:
            fail(arg, path, f"no column {', '.join(missing)} in the header ({', '.join(header)})")
        where = [header.index(c) for c in columns]
        out = {c: [] for c in columns}
        for number, line in enumerate(f, 2):
            if limit is not None and len(out[columns[0]]) >= limit:
                break
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if len(fields) <= max(where):
                fail(arg, path, f"line {number} has {len(fields)} fields, the header {len(header)}")
            for c, i in zip(columns, where):
                out[c].append(fields[i].strip())
    return out


# ---------------------------------------------------------------------------------------------------- models


def load_model(row):
    """Set row.encode / params / width."""
    if row.kind == "classifier":
        return load_classifier(row)
    if row.kind == "fast":
        from deploy.static_encoder import StaticEncoder
        from utils.errors import ConfigError
        try:
            model = StaticEncoder(row.path, remember=0)  # no round reuses the word splits an earlier round made
        except ConfigError as err:
            fail("--fast", row.spec, str(err))
        row.params, row.width = model.num_parameters(), model.width
        row.encode = lambda texts: model.encode(list(texts), batch_size=BATCH).numpy()
        return
    if row.kind == "model2vec":
        try:
            from model2vec import StaticModel
        except ImportError:
            fail("--m2v", row.spec, "model2vec is not installed (pip install model2vec==0.10.0)")
        try:
            model = StaticModel.from_pretrained(row.path)
        except Exception as err:  # noqa: BLE001 - any load failure is one line naming the argument
            fail("--m2v", row.spec, f"cannot load as a Model2Vec model ({first_line(err)})")
        rows, row.width = model.embedding.shape
        row.params = int(rows) * int(row.width)
        row.numbers.update(rows=int(rows))
        row.encode = lambda texts: model.encode(list(texts), batch_size=BATCH, use_multiprocessing=False)
        return
    from sentence_transformers import SentenceTransformer
    from efficiency.counts import count_params
    try:
        model = SentenceTransformer(row.path, device="cpu", local_files_only=True)
    except Exception as err:  # noqa: BLE001
        fail(ARGS[row.kind], row.spec,
             f"cannot load {row.path} as a SentenceTransformer ({first_line(err)})")
    model.eval()
    row.params = count_params(model)
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    row.width = dimension()
    row.encode = lambda texts: model.encode(list(texts), batch_size=BATCH, convert_to_numpy=True,
                                            show_progress_bar=False)


def load_classifier(row):
    """A --clf run as predict.py loads it; encode = the student's own word tokenisation and padding (the formatter's
    padded(), leaving out the teacher's BERT inputs that a distillation run's formatter adds), then its forward."""
    import torch
    from efficiency.counts import count_params
    from predict import load_run
    try:
        config, method, formatter, _ = load_run(row.path)
    except Exception as err:  # noqa: BLE001
        fail("--clf", row.spec, f"cannot load as predict.py does ({first_line(err)})")
    name = config.get("model", "model_name")
    if not method.reads_word_ids:
        fail("--clf", row.spec, f"model '{name}' is not a word-level classifier (distilled_bilstm, bilstm, "
                                "elmo_bilstm, elmo_bilstm_cls, ltd)")
    if formatter.tokenizer.pairs:
        fail("--clf", row.spec, f"model '{name}' reads sentence pairs; --clf times single sentences (a pair run's "
                                "STS-B score goes to --clf_stsb)")
    student = method.student_model()
    row.params = count_params(student)

    def classify(texts):
        with torch.inference_mode():
            return torch.cat([student(*formatter.padded(texts[i:i + BATCH])).logits
                              for i in range(0, len(texts), BATCH)]).numpy()
    row.encode = classify


def first_line(err):
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


# ---------------------------------------------------------------------------------------------------- measures


def quartiles(values):
    """(median, IQR) as efficiency/counts.py takes them."""
    if len(values) == 1:
        return values[0], 0.0
    q1, median, q3 = statistics.quantiles(values, n=4)
    return statistics.median(values), q3 - q1


def time_rounds(rows, sentences, rounds, warmup):
    """{label: [sentences/s per timed round]}: every round encodes `sentences` once with each model, round-robin,
    the first model rotating; the first `warmup` rounds are not kept."""
    speeds = {row.label: [] for row in rows}
    for r in range(warmup + rounds):
        start = r % len(rows)
        for row in rows[start:] + rows[:start]:
            begin = time.perf_counter()
            row.encode(sentences)
            seconds = time.perf_counter() - begin
            if r >= warmup:
                speeds[row.label].append(len(sentences) / seconds)
    return speeds


def cosines(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def stsb_spearman(encode, stsb):
    from evaluator.metrics import spearman
    n = len(stsb["sentence1"])
    embeddings = encode(stsb["sentence1"] + stsb["sentence2"])
    return 100 * spearman(cosines(embeddings[:n], embeddings[n:]), np.asarray(stsb["score"], dtype=np.float64))


def lr_accuracy(encode, train, dev):
    from sklearn.linear_model import LogisticRegression
    classifier = LogisticRegression(**LR)
    classifier.fit(np.asarray(encode(train["sentence"]), dtype=np.float64), np.asarray(train["label"], dtype=int))
    predicted = classifier.predict(np.asarray(encode(dev["sentence"]), dtype=np.float64))
    return 100 * float(np.mean(predicted == np.asarray(dev["label"], dtype=int)))


# ---------------------------------------------------------------------------------------------------- table


def cell(value, fmt):
    return "-" if value is None else format(value, fmt)


def table(rows, settings):
    """Markdown lines: one row per model, then the notes saying how each number was taken."""
    threads = f"{settings['threads']} thread" + ("s" if settings["threads"] != 1 else "")
    speed = f"sentences/s (batch {BATCH}, {threads}), median ± IQR"
    lines = [f"| model | kind | parameters | {speed} | speed-up | STS-B dev Spearman × 100, cosines or (own head) | "
             "SST-2 dev accuracy %, (LR) or (own head) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        n = row.numbers
        s = n.get("sentences_per_s")
        per_s = "-" if s is None else f"{s['median']:,.0f} ± {s['iqr']:,.0f}"
        speedup = cell(n.get("speedup"), ".2f") + ("x" if n.get("speedup") is not None else "")
        sst2 = "-" if n.get("sst2_accuracy") is None else f"{n['sst2_accuracy']:.2f} ({n['sst2_how']})"
        stsb = cell(n.get("stsb_spearman"), ".2f") + (" (own head)" if row.stsb_run else "")
        lines.append(f"| {row.label} | {KINDS[row.kind]} | {row.params:,} | {per_s} | {speedup} | {stsb} | {sst2} |")
    notes = [f"STS-B: {settings['stsb_pairs']} pairs of {settings['stsb']}."]
    if any(row.stsb_run for row in rows):
        notes.append("STS-B (own head): the regression head of a classifier's STS-B run, metrics.spearman of "
                     "RUN_DIR/results.json (" + ", ".join(f"{row.label}: {row.stsb_run}" for row in rows
                                                           if row.stsb_run) + ").")
    if not settings["skip_speed"]:
        notes.append(f"Speed: the first {settings['n_sentences']} STS-B dev sentences, {settings['rounds']} rounds "
                     f"after {settings['warmup']} warm-up, models interleaved round-robin (time.perf_counter)" +
                     ("; a word-level classifier from text to logits." if any(row.kind == "classifier" for row in rows)
                      else "."))
    if not settings["skip_sst2"]:
        notes.append(f"(LR): logistic regression (C=1.0, max_iter=1000, random_state=0) on the frozen embeddings of "
                     f"{settings['sst2_train_rows']} sentences of {settings['sst2_train']}, scored on "
                     f"{settings['sst2_dev']}.")
    if not settings["skip_sst2"] and any(row.sst2_run for row in rows):
        notes.append("(own head): the method's own classifier, metrics.accuracy of RUN_DIR/results.json (" +
                     ", ".join(f"{row.label}: {row.sst2_run}" for row in rows if row.sst2_run) + ").")
    return lines + [""] + notes


def record(rows, settings, lines):
    return {"settings": settings, "table": "\n".join(lines),
            "models": [{"label": row.label, "kind": row.kind, "path": row.path, "params": row.params,
                        "width": row.width, "sst2_run": str(row.sst2_run) if row.sst2_run else None,
                        "stsb_run": str(row.stsb_run) if row.stsb_run else None, **row.numbers}
                       for row in rows]}


def run_results(run_dir):
    """A run's own results.json metrics, kept in the JSON as they are."""
    path = Path(run_dir) / "results.json"
    try:
        return json.loads(path.read_text()).get("metrics") if path.is_file() else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------- main


class InOrder(argparse.Action):
    """--m2v, --run and --clf append (kind, spec) to one list, so the rows keep the command line's order."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, list(getattr(namespace, self.dest) or []) + [(self.const, v) for v in values])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2",
                        help="[LABEL=]a SentenceTransformer folder or name (the reference row; label 'teacher')")
    parser.add_argument("--m2v", dest="models", nargs="+", action=InOrder, const="model2vec", default=[],
                        metavar="LABEL=DIR", help="Model2Vec model folders")
    parser.add_argument("--run", dest="models", nargs="+", action=InOrder, const="run", default=[],
                        metavar="LABEL=RUN_DIR", help="run directories with a sentence-transformers student/")
    parser.add_argument("--fast", dest="models", nargs="+", action=InOrder, const="fast", default=[],
                        metavar="LABEL=RUN_DIR", help="a --run folder encoded by deploy/static_encoder.py (the same "
                        "embeddings, without sentence-transformers' per-batch work)")
    parser.add_argument("--clf", dest="models", nargs="+", action=InOrder, const="classifier", default=[],
                        metavar="LABEL=RUN_DIR", help="single-sentence word-level classifier runs (Distilled-BiLSTM, "
                        "the ELMo student): SST-2 from their own head")
    parser.add_argument("--clf_stsb", nargs="+", action="extend", default=[], metavar="LABEL=RUN_DIR",
                        help="the --clf row LABEL takes its STS-B Spearman from this STS-B run's results.json")
    parser.add_argument("--sst2_run", nargs="+", action="extend", default=[], metavar="LABEL=RUN_DIR",
                        help="the --run row LABEL takes its SST-2 accuracy from RUN_DIR/results.json (own head)")
    parser.add_argument("--stsb", default="../shared/data/glue/STS-B/dev.tsv")
    parser.add_argument("--sst2_train", default="../shared/data/glue/SST-2/train.tsv")
    parser.add_argument("--sst2_dev", default="../shared/data/glue/SST-2/dev.tsv")
    parser.add_argument("--sst2_max_train", type=int, default=None, help="use the first N training rows (default all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and tokenizers' pool) while measuring")
    parser.add_argument("--n_sentences", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--skip_speed", action="store_true")
    parser.add_argument("--skip_sst2", action="store_true")
    parser.add_argument("--json", default=None, metavar="OUT", help="all raw numbers, written atomically")
    args = parser.parse_args(argv)
    for name in ("threads", "n_sentences", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or (args.sst2_max_train is not None and args.sst2_max_train < 1):
        parser.error("--warmup must be >= 0 and --sst2_max_train >= 1")
    return args


def measure(args):
    """Check every path, load, measure; returns (rows, settings)."""
    stsb = read_tsv("--stsb", args.stsb, ("sentence1", "sentence2", "score"))
    rows = [teacher_row(args.teacher)] + model_rows(args.models)
    seen = set()
    for row in rows:
        if row.label in seen:
            fail(ARGS[row.kind], row.spec, f"label {row.label} used twice (the teacher's is '{rows[0].label}')")
        seen.add(row.label)
    attach_sst2_runs(rows, args.sst2_run)
    attach_stsb_runs(rows, args.clf_stsb)
    train = dev = None
    if not args.skip_sst2:
        train = read_tsv("--sst2_train", args.sst2_train, ("sentence", "label"), args.sst2_max_train)
        dev = read_tsv("--sst2_dev", args.sst2_dev, ("sentence", "label"))
    for row in rows:
        load_model(row)
        if row.kind in ("run", "fast", "classifier"):
            row.numbers["run_results_metrics"] = run_results(Path(row.path).parent if row.kind != "classifier"
                                                             else row.path)
    sentences = [s for pair in zip(stsb["sentence1"], stsb["sentence2"]) for s in pair][:args.n_sentences]
    settings = {"threads": args.threads, "batch_size": BATCH, "n_sentences": len(sentences), "rounds": args.rounds,
                "warmup": args.warmup, "timer": "time.perf_counter, models interleaved round-robin",
                "stsb": str(args.stsb), "stsb_pairs": len(stsb["score"]), "skip_speed": args.skip_speed,
                "skip_sst2": args.skip_sst2, "sst2_train": str(args.sst2_train), "sst2_dev": str(args.sst2_dev),
                "sst2_max_train": args.sst2_max_train, "sst2_train_rows": len(train["sentence"]) if train else None,
                "logistic_regression": LR}
    if not args.skip_speed:
        speeds = time_rounds(rows, sentences, args.rounds, args.warmup)
        for row in rows:
            median, iqr = quartiles(speeds[row.label])
            row.numbers["sentences_per_s"] = {"median": median, "iqr": iqr, "rounds": speeds[row.label]}
        reference = rows[0].numbers["sentences_per_s"]["median"]
        for row in rows:
            row.numbers["speedup"] = row.numbers["sentences_per_s"]["median"] / reference
    for row in rows:
        if row.kind != "classifier":  # a classifier's logits are no embedding: its STS-B is --clf_stsb's or "-"
            row.numbers["stsb_spearman"] = stsb_spearman(row.encode, stsb)
        if args.skip_sst2:
            row.numbers.pop("sst2_accuracy", None)
        elif row.sst2_run is not None:
            row.numbers["sst2_how"] = "own head"
        else:
            row.numbers["sst2_accuracy"], row.numbers["sst2_how"] = lr_accuracy(row.encode, train, dev), "LR"
    return rows, settings


def main(argv=None):
    args = parse_args(argv)
    from pretrained.offline import go_offline
    go_offline()
    import torch
    threads, rayon = torch.get_num_threads(), os.environ.get("RAYON_NUM_THREADS")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))
    try:
        rows, settings = measure(args)
    finally:  # a caller in the same process (the tests) keeps its settings
        torch.set_num_threads(threads)
        if rayon is None:
            os.environ.pop("RAYON_NUM_THREADS", None)
    lines = table(rows, settings)
    print("\n".join(lines))
    if args.json:
        from process.run_dir import write_json
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, record(rows, settings, lines))
    return rows


if __name__ == "__main__":
    try:
        main()
    except SystemExit as stop:  # fail()'s one line: to stderr, with exit 2 (bad input) as argparse's errors exit
        if not isinstance(stop.code, str):
            raise
        print(stop.code, file=sys.stderr)
        sys.exit(2)
