"""GLUE TSV files as written by the official download_glue_data.py.

Lines are split on tabs only (GLUE text contains unbalanced quotes that the csv module would
swallow). Columns are located by header name whenever a header exists, so re-cut files with
another layout (e.g. MNLI subsets `index sentence1 sentence2 gold_label`) load too; fixed
positions are used only for header-less CoLA.
"""

import json
from pathlib import Path
from typing import NamedTuple, Optional

from dataset.heldout import split_rows
from dataset.text_lines import ExamplesDataset, check_not_empty, iter_lines, train_limit
from utils.errors import ConfigError, DataError
from utils.paths import data_file, resolve


class TaskSpec(NamedTuple):
    """Column names (header files) and official positions (text_a, text_b, label) of one task."""

    labels: Optional[list]  # None = regression (float score)
    header: bool
    text_a: str
    text_b: Optional[str]
    label: str
    columns: tuple  # official (text_a, text_b, label) positions; label -1 = last column
    n_columns: int  # official column count of the labeled files


_BIN, _NLI = ["0", "1"], ["entailment", "not_entailment"]

GLUE_TASKS = {
    "CoLA": TaskSpec(_BIN, False, "sentence", None, "label", (3, None, 1), 4),
    "SST-2": TaskSpec(_BIN, True, "sentence", None, "label", (0, None, 1), 2),
    "MRPC": TaskSpec(_BIN, True, "#1 String", "#2 String", "Quality", (3, 4, 0), 5),
    "STS-B": TaskSpec(None, True, "sentence1", "sentence2", "score", (7, 8, -1), 10),
    "QQP": TaskSpec(_BIN, True, "question1", "question2", "is_duplicate", (3, 4, 5), 6),
    "MNLI": TaskSpec(["contradiction", "entailment", "neutral"], True, "sentence1", "sentence2", "gold_label",
                     (8, 9, -1), 12),
    "QNLI": TaskSpec(_NLI, True, "question", "sentence", "label", (1, 2, 3), 4),
    "RTE": TaskSpec(_NLI, True, "sentence1", "sentence2", "label", (1, 2, 3), 4),
    "WNLI": TaskSpec(_BIN, True, "sentence1", "sentence2", "label", (1, 2, 3), 4),
}

# What the numeric GLUE labels mean, in id order (the ClassLabel names of the GLUE release on the Hugging Face hub):
# an exported classifier's id2label and the results' per-class rows carry these instead of "0" / "1".
GLUE_LABEL_NAMES = {"CoLA": ["unacceptable", "acceptable"], "SST-2": ["negative", "positive"],
                    "MRPC": ["not_equivalent", "equivalent"], "QQP": ["not_duplicate", "duplicate"],
                    "WNLI": ["not_entailment", "entailment"]}


def label_names(config):
    """The labels' names in id order: [data] label_list as written, else GLUE's names for the task (None for
    regression)."""
    own = list(config.get("data", "label_list") or [])
    if own:
        return own
    task = config.get("data", "task")
    spec = task_spec(task)
    return next((names for name, names in GLUE_LABEL_NAMES.items() if _norm(name) == _norm(task)), spec.labels)


def _norm(task):
    """'SST-2', 'sst2', 'sst_2' all name the same task (as in evaluator/glue.py)."""
    return str(task or "").strip().lower().replace("-", "").replace("_", "")


def task_spec(task):
    """The TaskSpec for a task name; unknown names list the known ones."""
    for name, spec in GLUE_TASKS.items():
        if _norm(name) == _norm(task):
            return spec
    raise DataError(f"unknown GLUE task '{task}' (known: {', '.join(GLUE_TASKS)})")


def _header_columns(path, lineno, fields, spec):
    """(text_a, text_b, label) indices from a header; label None when absent (test file)."""
    def find(name):
        if name not in fields:
            shown = repr(fields)[:200]  # a header-less file's first row may be huge
            raise DataError(f"{path}:{lineno}: header has no '{name}' column (header: {shown})")
        return fields.index(name)

    text_a = find(spec.text_a)
    text_b = find(spec.text_b) if spec.text_b else None
    return text_a, text_b, fields.index(spec.label) if spec.label in fields else None


def _is_headerless_test_header(fields, spec):
    """CoLA test.tsv has a header (`index sentence`) although its train/dev files have none."""
    return fields[0] == "index" and spec.text_a in fields


def _parse_label(path, lineno, value, labels):
    """Class index for classification, finite float for regression."""
    value = value.strip()
    if labels is not None:
        if value not in labels:
            raise DataError(f"{path}:{lineno}: label '{value}' not in label set {labels}")
        return labels.index(value)
    try:
        score = float(value)
    except ValueError:
        score = float("nan")
    if score != score or score in (float("inf"), float("-inf")):
        raise DataError(f"{path}:{lineno}: score '{value}' is not a finite number")
    return score


def read_glue_tsv(path, task, label_list=None, max_examples=0):
    """Examples {guid, text_a, text_b, label} of one GLUE split; see module docstring."""
    spec = task_spec(task)
    labels = list(label_list) if label_list else spec.labels
    path = Path(path)
    examples, cols, n_cols = [], None, None
    for lineno, line in iter_lines(path):
        if line == "":
            continue
        fields = line.split("\t")
        if cols is None and (spec.header or _is_headerless_test_header(fields, spec)):
            cols, n_cols = _header_columns(path, lineno, fields, spec), len(fields)
            continue
        if cols is None:
            a, b, lab = spec.columns
            cols, n_cols = (a, b, lab % spec.n_columns), spec.n_columns
        if len(fields) != n_cols:
            raise DataError(f"{path}:{lineno}: expected {n_cols} columns, got {len(fields)}")
        a, b, lab = cols
        examples.append({
            "guid": f"{path.stem}-{lineno}",
            "text_a": fields[a],
            "text_b": fields[b] if b is not None else None,
            "label": _parse_label(path, lineno, fields[lab], labels) if lab is not None else None,
        })
        if 0 < max_examples <= len(examples):
            break
    return check_not_empty(examples, path)


def read_augmented(config, task, label_list):
    """The augmented training rows ([data] aug_file, written by tools/augment.py), appended after the originals."""
    name = config.get("data", "aug_file")
    if not name:
        raise ConfigError(f"{config.source('data', 'use_aug')}: [data] use_aug = true needs [data] aug_file "
                          "(make it with tools/augment.py)")
    path = resolve(name)
    if not path.is_file():
        raise DataError(f"{config.source('data', 'aug_file')}: [data] aug_file = {name}: {path} does not exist "
                        "(make it with tools/augment.py)")
    every = config.get("data", "heldout_every")
    if every and made_with(path).get("heldout_every") != every:
        raise ConfigError(f"{config.source('data', 'aug_file')}: [data] aug_file = {name} was not made from the "
                          f"training part alone (heldout_every = {every}): its copies may come from the held-out dev "
                          f"rows; remake it with tools/augment.py --heldout_every {every}")
    return read_glue_tsv(path, task, label_list)


def aug_record_path(aug_file):
    """Where tools/augment.py records how it made an augmented file: AUG_FILE.json beside it."""
    return Path(f"{aug_file}.json")


def made_with(path):
    """How tools/augment.py made an augmented file, {} when it left no record."""
    try:
        return json.loads(aug_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_transfer(config, task):
    """Unlabeled training rows ([data] transfer_file): a header with text_a (and text_b for pair tasks), label None."""
    name = config.get("data", "transfer_file")
    path = resolve(name)
    if not path.is_file():
        raise DataError(f"{config.source('data', 'transfer_file')}: [data] transfer_file = {name}: {path} does not "
                        "exist (make it with tools/transfer_set.py)")
    wanted = ["text_a", "text_b"] if task_spec(task).text_b else ["text_a"]
    examples, cols = [], None
    for lineno, line in iter_lines(path):
        fields = line.split("\t")
        if cols is None:
            if any(column not in fields for column in wanted):
                raise DataError(f"{path}:{lineno}: a {task} transfer file needs a header with columns {wanted} "
                                f"(header: {repr(fields)[:200]})")
            cols, n_cols = [fields.index(column) for column in wanted], len(fields)
            continue
        if line == "":
            continue
        if len(fields) != n_cols:
            raise DataError(f"{path}:{lineno}: expected {n_cols} columns, got {len(fields)}")
        examples.append({"guid": f"transfer-{lineno}", "text_a": fields[cols[0]],
                         "text_b": fields[cols[1]] if len(cols) > 1 else None, "label": None})
    return check_not_empty(examples, path)


def read_split(path, task, label_list, every, mode, limit):
    """The rows `mode` reads: the whole file, or with every > 0 its train or held-out part (dataset/heldout.py), for
    a task whose only labelled file is its train file; the train cap applies after the split."""
    if not every:
        return read_glue_tsv(path, task, label_list, limit)
    rows = check_not_empty(split_rows(read_glue_tsv(path, task, label_list), every, mode), path)
    return rows[:limit] if limit else rows


class GlueTSVDataset(ExamplesDataset):
    """A GLUE split chosen by [data] task and data_file(config, mode)."""

    def __init__(self, config, mode):
        self.mode = mode
        self.task = config.get("data", "task")
        spec = task_spec(self.task)
        self.label_list = list(config.get("data", "label_list") or []) or spec.labels
        self.label_names = label_names(config)
        self.is_regression = self.label_list is None
        self.path = data_file(config, mode)
        every = config.get("data", "heldout_every")
        if every and self.path != data_file(config, "train"):
            raise ConfigError(f"{config.source('data', 'heldout_every')}: [data] heldout_every = {every} holds out rows "
                              f"of train_file, but {mode}_file is another file; name train_file there too, or set "
                              "heldout_every = 0 to read that file whole")
        self.examples = read_split(self.path, self.task, self.label_list, every, mode, train_limit(config, mode))
        if mode == "train" and config.get("data", "use_aug"):
            self.examples = self.examples + read_augmented(config, self.task, self.label_list)
        if mode == "train" and config.get("data", "transfer_file"):
            self.examples = self.examples + read_transfer(config, self.task)
