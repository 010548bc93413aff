"""One-sentence-per-line text (unlabeled, e.g. wiki sentences) and the shared safe line iterator.

`iter_lines` is the single place where files are opened and decoded, so every reader reports
missing files, bad UTF-8 and huge lines the same way: DataError("file:line: ...").
"""

from pathlib import Path

from torch.utils.data import Dataset

from utils.errors import DataError
from utils.paths import data_file

MAX_LINE_CHARS = 1_000_000


def iter_lines(path):
    """Yield (lineno, text) with 1-based numbers, newline/CR and a leading BOM stripped.

    Read as bytes and split on b"\\n" only, so text with \\x0b, \\x1c or U+2028 inside a
    sentence is not cut into extra lines (str.splitlines would do that).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        fh = open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    limit = 4 * MAX_LINE_CHARS + 2  # bytes: the most a legal line can take as UTF-8 plus "\r\n"
    with fh:
        lineno = 0
        while True:
            raw = fh.readline(limit + 1)  # bounded, so one giant line cannot exhaust memory
            if not raw:
                return
            lineno += 1
            if len(raw) > limit:
                raise DataError(f"{path}:{lineno}: line too long (over {MAX_LINE_CHARS} characters)")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {err.start + 1} of the line)") from None
            text = text.removesuffix("\n").removesuffix("\r")
            if lineno == 1:
                text = text.lstrip("\ufeff")
            if len(text) > MAX_LINE_CHARS:
                raise DataError(f"{path}:{lineno}: line too long ({len(text)} characters, limit {MAX_LINE_CHARS})")
            yield lineno, text


def check_not_empty(examples, path):
    """An empty split would only fail later, obscurely (zero batches, NaN metrics)."""
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def read_text_lines(path, max_examples=0):
    """Non-blank lines as unlabeled examples (text_b and label None)."""
    examples = []
    for lineno, text in iter_lines(path):
        if max_examples > 0 and len(examples) >= max_examples:
            break
        if not text.strip():
            continue
        examples.append({"guid": f"{Path(path).stem}-{lineno}", "text_a": text, "text_b": None, "label": None})
    return check_not_empty(examples, path)


def train_limit(config, mode):
    """data.max_examples caps only the training split; evaluation always sees everything."""
    limit = config.get("data", "max_examples") or 0
    return int(limit) if mode == "train" else 0


class ExamplesDataset(Dataset):
    """Plain list-of-examples dataset; subclasses only decide how to read the file."""

    label_list = None
    is_regression = False

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, idx):
        return self.examples[idx]


class TextLinesDataset(ExamplesDataset):
    """Unlabeled sentences, e.g. for general (pre-training style) distillation."""

    def __init__(self, config, mode):
        self.mode = mode
        self.path = data_file(config, mode)
        self.examples = read_text_lines(self.path, train_limit(config, mode))
