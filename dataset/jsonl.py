"""JSON-lines data (one object per line, e.g. SuperGLUE BoolQ) with configurable field names."""

import json
import math
from pathlib import Path

from dataset.text_lines import ExamplesDataset, check_not_empty, iter_lines, train_limit
from utils.errors import ConfigError, DataError
from utils.paths import data_file


def _text(path, lineno, obj, field):
    """A required string field; anything else is a data error, not a crash in the tokenizer."""
    if field not in obj:
        raise DataError(f"{path}:{lineno}: missing field '{field}'")
    value = obj[field]
    if not isinstance(value, str):
        raise DataError(f"{path}:{lineno}: field '{field}' must be a string, got {type(value).__name__}")
    return value


def _label(path, lineno, value, label_list):
    """Class index via str(value) (bools as "true"/"false", as BoolQ writes them) or a finite float."""
    if label_list is not None:
        key = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, (str, int, float)) or key not in label_list:
            raise DataError(f"{path}:{lineno}: label '{key}' not in label set {list(label_list)}")
        return label_list.index(key)
    score = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            score = float(value)
        except ValueError:
            pass
    if score is None or not math.isfinite(score):
        raise DataError(f"{path}:{lineno}: label {value!r} is not a finite number")
    return score


def read_jsonl(path, text_a_field, text_b_field=None, label_field=None, label_list=None, max_examples=0):
    """Examples {guid, text_a, text_b, label}; label None when label_field is None."""
    path = Path(path)
    label_list = list(label_list) if label_list else None
    examples = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
        except (ValueError, RecursionError) as err:  # e.g. over-long integers, absurd nesting
            raise DataError(f"{path}:{lineno}: invalid JSON ({type(err).__name__})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        label = None
        if label_field is not None:
            if label_field not in obj:
                raise DataError(f"{path}:{lineno}: missing field '{label_field}'")
            label = _label(path, lineno, obj[label_field], label_list)
        examples.append({
            "guid": f"{path.stem}-{lineno}",
            "text_a": _text(path, lineno, obj, text_a_field),
            "text_b": _text(path, lineno, obj, text_b_field) if text_b_field is not None else None,
            "label": label,
        })
        if 0 < max_examples <= len(examples):
            break
    return check_not_empty(examples, path)


class JsonlDataset(ExamplesDataset):
    """JSONL split; field names and labels come from [data] so any task fits without code."""

    def __init__(self, config, mode):
        self.mode = mode
        text_a = config.get("data", "text_a_field")
        if not text_a:
            raise ConfigError("[data] text_a_field: required for JSONL data but empty")
        text_b = config.get("data", "text_b_field") or None
        label_field = config.get("data", "label_field") or None
        self.label_list = list(config.get("data", "label_list") or []) or None
        self.is_regression = label_field is not None and self.label_list is None
        self.path = data_file(config, mode)
        self.examples = read_jsonl(self.path, text_a, text_b, label_field, self.label_list,
                                   train_limit(config, mode))
