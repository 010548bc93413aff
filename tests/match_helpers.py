"""Tiny text-matching fixtures: RTE-layout pair data whose label says whether the two texts carry
the same sentiment word, and a random cross-encoder teacher marked as a mean-pooling bipartition export."""
import random
from pathlib import Path

from tests.helpers import FILLER, NEG, POS, tiny_config_text, write_tiny_model

LQ, LD = 8, 12  # query / document tower lengths of the tiny runs


def write_pair_data(path, n_train=48, n_dev=16, seed=0):
    rng = random.Random(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    def rows(n):
        out = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            same = i % 2
            pa = rng.choice([POS, NEG])
            pb = pa if same else (NEG if pa is POS else POS)
            query = " ".join(rng.sample(FILLER, rng.randint(1, 4)) + [rng.choice(pa)])
            doc = " ".join(rng.sample(FILLER, rng.randint(2, 8)) + [rng.choice(pb)])
            out.append(f"{i}\t{doc}\t{query}\t{'entailment' if same else 'not_entailment'}")
        return "\n".join(out) + "\n"

    for name, n in (("train", n_train), ("dev", n_dev), ("test", n_dev)):
        (path / f"{name}.tsv").write_text(rows(n))
    return path


def write_match_teacher(path, layers=2, heads=2, seed=0, dropout=0.0):
    """A random BertForSequenceClassification whose config says pooling_strategy = mean (a bert_bipartition export)."""
    from transformers import BertForSequenceClassification
    path = write_tiny_model(path, layers=layers, heads=heads, dropout=dropout, seed=seed)
    model = BertForSequenceClassification.from_pretrained(path)
    model.config.pooling_strategy = "mean"
    model.save_pretrained(path)
    return path


def match_config_text(model_dir, data_dir, model_name, teacher=None, **sections):
    """INI text for a tiny matching run (RTE layout; the hypothesis, sentence2, is the query)."""
    base = {"data": {"task": "RTE", "formatter_type": "bipartition"},
            "match": {"max_seq_length_query": LQ, "max_seq_length_doc": LD, "swap_pair": "true"}}
    if teacher:
        base["distill"] = {"teacher": str(teacher), "hard_weight": 1.0}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return tiny_config_text(model_dir, data_dir, model_name, **base)
