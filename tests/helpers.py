"""Test helpers: a tiny random BERT (teacher/pretrained stand-in), its word-level tokenizer, and a
tiny synthetic sentiment dataset. Everything is built in-process; nothing is downloaded."""
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


POS = ["good", "great", "fine", "lovely", "superb", "fun"]
NEG = ["bad", "awful", "poor", "boring", "dull", "weak"]
FILLER = ["the", "movie", "was", "plot", "acting", "really", "quite", "a", "story", "and", "very", "film"]


def checkout_files():
    """The checkout's own files, relative to REPO: tracked, and untracked ones git does not ignore (no virtualenv,
    e.g. the Model2Vec peer's .venv-model2vec, nor run output); outside git, everything but those."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
        return [name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "runs", "__pycache__", ".pytest_cache"}
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)
                and not p.relative_to(REPO).parts[0].startswith(".venv")]


def job_config(job):
    """The config a job-graph train.py job would run (experiments/compare_full.Job): its --config with its --set items."""
    from init.config import load_config
    cmd = job.cmd
    return load_config(REPO / cmd[cmd.index("--config") + 1], [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"])


def make_tokenizer(words):
    """A BERT WordPiece tokenizer over exactly these words (transformers 5 takes the vocab as a dict)."""
    from transformers import BertTokenizer
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)


def write_tiny_model(path, layers=2, hidden=32, heads=2, dropout=0.1, num_labels=2, seed=0):
    """A random BertForSequenceClassification + BertTokenizerFast over a small word vocabulary."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + FILLER
    tok = make_tokenizer(vocab)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def write_tiny_data(path, n_train=48, n_dev=16, seed=0):
    """SST-2 layout TSVs whose label is decided by a sentiment word, so a tiny model can learn it."""
    rng = random.Random(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    def rows(n):
        out = ["sentence\tlabel"]
        for i in range(n):
            label = i % 2
            words = rng.sample(FILLER, rng.randint(2, 7)) + [rng.choice(POS if label else NEG)]
            rng.shuffle(words)
            out.append(" ".join(words) + f"\t{label}")
        return "\n".join(out) + "\n"

    (path / "train.tsv").write_text(rows(n_train))
    (path / "dev.tsv").write_text(rows(n_dev))
    (path / "test.tsv").write_text(rows(n_dev))
    return path




def sealed_bytes(obj):
    """`obj` as atomic_save writes it: torch.save's zip sealed with its sha256 (a planted file that verifies)."""
    import io
    import torch
    from process.checkpoint import seal
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    seal(buffer)
    return buffer.getvalue()


def tiny_config_text(model_dir, data_dir, model_name="bert_cls", **sections):
    """INI text for a tiny run; `sections` maps section -> {key: value} overrides."""
    base = {
        "data": {"root": str(data_dir), "train_file": "train.tsv", "valid_file": "dev.tsv", "test_file": "test.tsv",
                 "max_seq_length": 16,
                 # 48 tiny examples make one length pool, i.e. fully sorted batches whose per-step losses swing
                 # with length; tests that compare single steps keep the plain shuffle (tests/test_benchmark.py
                 # covers the default, group_by_length = true)
                 "group_by_length": "false"},
        "model": {"model_name": model_name, "pretrained": str(model_dir)},
        "train": {"epoch": 2, "batch_size": 8, "learning_rate": 1e-3, "logging_steps": 1, "keep_last": 100},
        "eval": {"batch_size": 8, "latency_batches": 2},
        "output": {"tensorboard": "false"},
        "distill": {"cache_dir": ""},  # no teacher-logit disk cache shared between tests (test_teacher_cache.py sets one)
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return "\n".join(f"[{s}]\n" + "\n".join(f"{k} = {v}" for k, v in kv.items()) for s, kv in base.items()) + "\n"
