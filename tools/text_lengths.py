"""Token-length percentiles of one text field (with [CLS]/[SEP]), to choose a tower's max_seq_length.

  python tools/text_lengths.py ../shared/data/glue/RTE/train.tsv sentence1 --limit 128
  python tools/text_lengths.py ../shared/data/boolq/val_superglue_format.jsonl passage --limit 160
"""
import argparse
import csv
import json

import numpy as np

from pretrained.loading import resolve_model_path


def read_field(path, field):
    with open(path, encoding="utf-8") as handle:
        if path.endswith(".jsonl"):
            return [json.loads(line)[field] for line in handle if line.strip()]
        return [row[field] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a GLUE-style TSV with a header, or a .jsonl file")
    parser.add_argument("field", help="column or JSON key")
    parser.add_argument("--limit", type=int, default=0, help="also print the share of texts that fit in LIMIT tokens")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2", help="tokenizer")
    args = parser.parse_args()
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.model))
    lengths = np.array([len(tokenizer(text)["input_ids"]) for text in read_field(args.path, args.field)])
    p50, p75, p90, p95 = np.percentile(lengths, [50, 75, 90, 95])
    print(f"{len(lengths)} texts: p50 {p50:.0f}, p75 {p75:.0f}, p90 {p90:.0f}, p95 {p95:.0f}, max {lengths.max()}")
    if args.limit:
        print(f"{100 * (lengths <= args.limit).mean():.1f}% fit in {args.limit} tokens")


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
