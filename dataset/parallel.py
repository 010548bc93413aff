"""Sentence pairs for multilingual sentence-embedding distillation and its evaluation.

`[data] <split>_file` is a comma-separated list of sets, each one of
- `SRC|TGT`: two aligned files, one sentence per line (read line by line: a literal tab inside a sentence is
  text, not a column separator), e.g. `multi30k/train.en|multi30k/train.de`;
- `FILE.tsv` with a header holding `sentence1`, `sentence2` and `score` (GLUE STS-B or any cross-lingual STS
  file): a similarity set, scored by Spearman;
- any other `FILE`: one `source<TAB>target` pair per line.
`[data] monolingual_file` (training only) adds sentences that have no translation, for the stages whose every
sentence regresses on the teacher's embedding of itself with no in-batch term (stage 3: rec_distill,
rec_bottle_distill, taught by the multilingual stage-1 model): general-domain text keeps the compressed student's
encoder general where the parallel captions alone would narrow it. Two consecutive sentences share a row, so a
row still holds two sentences; the pairing carries no meaning for those losses, and the models that would read it
as a translation refuse the key (model/parts/sentence_embedding.py).
Each set becomes a group (named by the target file's extension for SRC|TGT, e.g. `de`, `deu`, else
`<folder>-<stem>`, e.g. `STS-B-dev`) that the multilingual evaluator scores on its own. Distinct sentences are
numbered (`texts`, `src_id`, `tgt_id`) so the teacher embeds each one once (process/embedding_cache.py)."""
import math
from pathlib import Path

from dataset.text_lines import ExamplesDataset, check_not_empty, iter_lines, read_text_lines, train_limit
from utils.errors import ConfigError, DataError
from utils.paths import data_root, resolve

STS_COLUMNS = ("sentence1", "sentence2", "score")


def parse_sets(text, key):
    """[(kind, paths)] from a `<split>_file` value; kind is pair, tsv (parallel or STS, decided by its header)."""
    sets = []
    for item in (x.strip() for x in str(text).split(",")):
        if not item:
            continue
        if "|" in item:
            parts = [p.strip() for p in item.split("|")]
            if len(parts) != 2 or not all(parts):
                raise ConfigError(f"{key} = {text}: '{item}' is not SRC|TGT (two files joined by |)")
            sets.append(("pair", parts))
        else:
            sets.append(("tsv", [item]))
    if not sets:
        raise ConfigError(f"{key}: empty, expected SRC|TGT file pairs or TSV files")
    return sets


def set_name(kind, paths):
    target = Path(paths[-1])
    if kind == "pair":
        return target.suffix.lstrip(".") or target.name
    return f"{target.parent.name}-{target.stem}" if target.parent.name else target.stem


def group_names(config):
    """Every set name of the valid, test and train splits, numbered in one fixed order shared by the dataset
    (labels carry the number) and the evaluator (which reports metrics by name)."""
    names = []
    for split in ("valid", "test", "train"):
        text = config.get("data", f"{split}_file")
        if not text:
            continue
        for kind, paths in parse_sets(text, f"[data] {split}_file"):
            name = set_name(kind, paths)
            if name not in names:
                names.append(name)
    return names


def read_pair_files(src, tgt):
    """[(src, tgt, where)] of aligned lines; blank pairs are skipped, unequal lengths are an error."""
    a, b = list(iter_lines(src)), list(iter_lines(tgt))
    if len(a) != len(b):
        raise DataError(f"{src} has {len(a)} lines but {tgt} has {len(b)}; parallel files must align line by line")
    return [(x, y, f"{tgt}:{n}") for (n, x), (_, y) in zip(a, b) if x.strip() and y.strip()]


def read_tsv(path):
    """([(a, b, where)], scores or None): an STS file (header with sentence1/sentence2/score) or plain pairs."""
    rows = list(iter_lines(path))
    header = rows[0][1].split("\t") if rows else []
    if all(c in header for c in STS_COLUMNS):
        i, j, k = (header.index(c) for c in STS_COLUMNS)
        pairs, scores = [], []
        for n, line in rows[1:]:
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != len(header):
                raise DataError(f"{path}:{n}: expected {len(header)} columns, got {len(cols)}")
            try:
                scores.append(float(cols[k]))
            except ValueError:
                raise DataError(f"{path}:{n}: score {cols[k]!r} is not a number") from None
            pairs.append((cols[i], cols[j], f"{path}:{n}"))
        return pairs, scores
    pairs = []
    for n, line in rows:
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataError(f"{path}:{n}: expected 2 columns (source<TAB>target), got {len(cols)}")
        pairs.append((cols[0], cols[1], f"{path}:{n}"))
    return pairs, None


def take(per_set, limit):
    """Every row of every set in order; with a limit ([data] max_examples), the first `limit` rows taken
    round-robin over the sets, so a capped run still sees every language pair."""
    if not limit:
        return [row for rows in per_set for row in rows]
    picked = [[] for _ in per_set]
    for depth in range(max(map(len, per_set))):
        for i, rows in enumerate(per_set):
            if depth < len(rows) and sum(map(len, picked)) < limit:
                picked[i].append(rows[depth])
    return [row for rows in picked for row in rows]


MONOLINGUAL_GROUP = -1.0  # training rows only; no evaluator reads it


def monolingual_rows(config, root):
    """[(a, b, where, label)] from [data] monolingual_file (comma-separated, one sentence per line): consecutive
    non-blank sentences two to a row, at most [data] monolingual_examples sentences in all (0 = every one); reading
    stops once the cap is reached."""
    text = config.get("data", "monolingual_file")
    if not text:
        return []
    cap = config.get("data", "monolingual_examples") or 0
    sentences = []
    for item in (x.strip() for x in str(text).split(",")):
        if item and not (cap and len(sentences) >= cap):
            sentences += read_text_lines(resolve(item, root), cap - len(sentences) if cap else 0)
    if len(sentences) < 2:
        raise ConfigError(f"{config.source('data', 'monolingual_file')}: [data] monolingual_file: needs at least "
                          f"2 sentences, got {len(sentences)}")
    return [(a["text_a"], b["text_a"], a["guid"], [MONOLINGUAL_GROUP, math.nan])
            for a, b in zip(sentences[0::2], sentences[1::2])]


class ParallelDataset(ExamplesDataset):
    """Examples {text_a: source, text_b: target, label: [group, score or nan], src_id, tgt_id}."""

    def __init__(self, config, mode):
        self.mode = mode
        key = f"[data] {mode}_file"
        names = group_names(config)
        root = data_root(config)
        self.texts, ids, self.examples = [], {}, []
        limit = train_limit(config, mode)

        def text_id(text):
            if text not in ids:
                ids[text] = len(self.texts)
                self.texts.append(text)
            return ids[text]

        per_set = []
        for kind, paths in parse_sets(config.get("data", f"{mode}_file"), key):
            files = [resolve(p, root) for p in paths]
            pairs, scores = (read_pair_files(*files), None) if kind == "pair" else read_tsv(files[0])
            check_not_empty(pairs, " | ".join(map(str, files)))
            group = names.index(set_name(kind, paths))
            per_set.append([(a, b, where, [float(group), scores[n] if scores is not None else math.nan])
                            for n, (a, b, where) in enumerate(pairs)])
        rows = take(per_set, limit) + (monolingual_rows(config, root) if mode == "train" else [])
        for a, b, where, label in rows:
            self.examples.append({"guid": where, "text_a": a, "text_b": b, "label": label,
                                  "src_id": text_id(a), "tgt_id": text_id(b)})
        self.source_ids = sorted({ex["src_id"] for ex in self.examples})
