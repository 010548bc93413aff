"""Build an unlabeled transfer set for a GLUE task ([data] transfer_file): texts from other sources, without
their labels, that the teacher will label (Hinton et al. 2015's transfer set; Turc et al. 2019 distil small
BERTs on such unlabeled task-like text). Pair tasks take pairs from pair sources; single-sentence tasks take
every sentence of a GLUE source, or the lines of a text file.

  python tools/transfer_set.py --task MRPC --output runs/transfer/MRPC.tsv \\
      --sources QQP:../shared/data/glue/QQP/train_subset.tsv STS-B:../shared/data/glue/STS-B/train.tsv \\
      --exclude ../shared/data/glue/MRPC/dev.tsv

Rows that share a text (lower-cased, whitespace collapsed) with an --exclude file (the dev / test sets you
report on) are dropped, so the teacher's answer on an evaluation example never reaches the student; so are
duplicates. Written to a temporary name, then renamed.
"""
import argparse
from pathlib import Path

from dataset.glue_tsv import read_glue_tsv, task_spec
from dataset.text_lines import read_text_lines
from process.cli import main_guard
from process.run_dir import write_text
from utils.errors import ConfigError


def norm(text):
    return " ".join(text.lower().split())


def read_source(spec, pair_task):
    """(text_a, text_b) rows of one `TASK:path` or `text:path` source, labels dropped."""
    kind, sep, path = spec.partition(":")
    if not sep:
        raise ConfigError(f"--sources {spec}: expected TASK:path (a GLUE task name) or text:path")
    if kind == "text":
        if pair_task:
            raise ConfigError(f"--sources {spec}: a text file has single sentences; the target task needs pairs")
        return [(ex["text_a"], None) for ex in read_text_lines(path)]
    rows = read_glue_tsv(path, kind)
    if pair_task:
        if task_spec(kind).text_b is None:
            raise ConfigError(f"--sources {spec}: {kind} has single sentences; the target task needs pairs")
        return [(ex["text_a"], ex["text_b"]) for ex in rows]
    return [(text, None) for ex in rows for text in (ex["text_a"], ex["text_b"]) if text]


def excluded_texts(paths, task):
    return {norm(t) for path in paths for ex in read_glue_tsv(path, task) for t in (ex["text_a"], ex["text_b"]) if t}


def build(task, sources, exclude):
    """Distinct rows of the sources, in source order, with no text shared with an excluded file; and counts."""
    pair_task = task_spec(task).text_b is not None
    banned, seen, out, counts = excluded_texts(exclude, task), set(), [], {}
    for spec in sources:
        kept = 0
        for a, b in read_source(spec, pair_task):
            texts = [t for t in (a, b) if t is not None]
            key = tuple(norm(t) for t in texts)
            if not all(key) or key in seen or any(k in banned for k in key):
                continue
            seen.add(key)
            out.append((a, b))
            kept += 1
        counts[spec] = kept
    return out, counts, pair_task


def write(rows, pair_task, output):
    """The TSV, written atomically (process/run_dir.write_text: temporary name, then rename)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    lines = ["text_a\ttext_b" if pair_task else "text_a"]
    for a, b in rows:
        lines.append("\t".join(t.replace("\t", " ").replace("\n", " ") for t in ((a, b) if pair_task else (a,))))
    write_text(output, "\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="the GLUE task the transfer set is for (its columns)")
    parser.add_argument("--sources", nargs="+", required=True, help="TASK:path (GLUE TSV) or text:path (one per line)")
    parser.add_argument("--exclude", nargs="*", default=[], help="GLUE files of --task whose texts must not appear")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    rows, counts, pair_task = build(args.task, args.sources, args.exclude)
    write(rows, pair_task, args.output)
    for spec, kept in counts.items():
        print(f"{spec}: {kept} rows")
    print(f"{args.output}: {len(rows)} unlabeled {'pairs' if pair_task else 'sentences'} for {args.task}")


if __name__ == "__main__":
    main_guard(main)
