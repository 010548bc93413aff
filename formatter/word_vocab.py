"""word_vocab: word-level batches for word-embedding students (Distilled-BiLSTM, Tang et al. 2019).

The vocabulary is built once per run from its training split (init/word_vocab.py, in train, valid, test and
test.py alike, so no file has to travel with a checkpoint) and handed to this formatter and to the student: lower-cased text, split by `_WORD` into words and punctuation; the
`[word_vocab] vocab_size` most frequent words, ties broken alphabetically, after <pad>=0, <unk>=1 and
<sep>=2. It counts the training rows the run reads (`[data] max_examples` applies) but never the augmented
rows of `[data] use_aug` (the same words, re-counted) or the unlabeled rows of `[data] transfer_file`: the
vocabulary is the labeled data's, whatever augmentation or transfer set a run adds. "[MASK]" (Tang's masking
augmentation) is the teacher's mask token and the student's <unk>, as in the paper.

Each text keeps at most `[word_vocab] max_length` words (the seed's 32). A sentence pair is one
sequence `a <sep> b`, each side cut to max_length first (so pairs are at most 2 * max_length + 1 long):
one encoder over the joined text, where the paper uses a siamese BiLSTM.

Batches carry the student's `word_ids` (B, L) padded with <pad> to the longest in the batch and
`word_lengths` (B,), and, when there is a teacher ([distill] teacher), the teacher's own BERT inputs
as teacher_input_ids / teacher_attention_mask / teacher_token_type_ids (`[data] max_seq_length`).
"""
import collections
import json
import re
from pathlib import Path

import torch

from formatter.labels import add_labels
from pretrained.loading import load_tokenizer
from pretrained.sources import teacher_tokenizer_source

PAD, UNK, SEP = "<pad>", "<unk>", "<sep>"
MASK_WORD = "[mask]"
_WORD = re.compile(r"\[mask\]|\w+(?:'\w+)*|'\w+|[^\w\s]")
VOCAB_FILE = "vocab.json"


def tokenize(text):
    """Lower-cased words, contractions ("n't", "'s") and single punctuation marks, in order."""
    return _WORD.findall(text.lower())


class WordVocab:
    """Word <-> id table with the small tokenizer interface the framework uses (len, save_pretrained)."""

    pad_id, unk_id, sep_id = 0, 1, 2

    def __init__(self, words, max_length=32):
        self.itos = [PAD, UNK, SEP] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary words must be unique and differ from <pad>, <unk>, <sep>")
        self.max_length = max_length

    @classmethod
    def build(cls, texts, size, max_length=32):
        """The `size` most frequent words of `texts` (ties: alphabetical); "[mask]" is never a word."""
        counts = collections.Counter(w for text in texts for w in tokenize(text))
        counts.pop(MASK_WORD, None)
        return cls([w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]], max_length)

    def __len__(self):
        return len(self.itos)

    @property
    def words(self):
        return self.itos[3:]

    def ids(self, text):
        return [self.stoi.get(w, self.unk_id) for w in tokenize(text)[: self.max_length]]

    def encode(self, text_a, text_b=None):
        """Ids of one text, or of `a <sep> b`; an empty text is one <unk> (an LSTM needs a step)."""
        ids = self.ids(text_a) if text_b is None else self.ids(text_a) + [self.sep_id] + self.ids(text_b)
        return ids or [self.unk_id]

    def save_pretrained(self, directory):
        """vocab.json beside the exported student: words in id order and the tokenisation used."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        data = {"format": "kdw-word-vocab", "specials": [PAD, UNK, SEP], "words": self.words,
                "max_length": self.max_length, "lowercase": True, "pattern": _WORD.pattern, "mask_word": MASK_WORD}
        (Path(directory) / VOCAB_FILE).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory):
        data = json.loads((Path(directory) / VOCAB_FILE).read_text(encoding="utf-8"))
        if data.get("format") != "kdw-word-vocab" or data.get("pattern") != _WORD.pattern:
            raise ValueError(f"{directory}/{VOCAB_FILE}: not a word vocabulary of this version")
        return cls(data["words"], data["max_length"])


class WordVocabFormatter:
    reads_word_vocab = True  # init builds the run's WordVocab once and passes it here and to the student

    def __init__(self, config, mode, word_vocab):
        self.mode = mode
        self.tokenizer = word_vocab
        teacher = teacher_tokenizer_source(config)
        self.teacher_tokenizer = load_tokenizer(teacher, "[distill] teacher") if teacher else None
        self.teacher_max_length = config.get("data", "max_seq_length")

    def __call__(self, examples):
        encoded = [self.tokenizer.encode(ex["text_a"], ex["text_b"]) for ex in examples]
        lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
        word_ids = torch.full((len(encoded), int(lengths.max())), self.tokenizer.pad_id, dtype=torch.long)
        for row, ids in enumerate(encoded):
            word_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        batch = {"word_ids": word_ids, "word_lengths": lengths}
        if self.teacher_tokenizer is not None:
            a = [ex["text_a"] for ex in examples]
            b = [ex["text_b"] for ex in examples] if examples[0]["text_b"] is not None else None
            teacher = self.teacher_tokenizer(a, b, padding="longest", truncation=True, max_length=self.teacher_max_length,
                                             return_tensors="pt")
            batch.update({"teacher_" + k: v for k, v in teacher.items()})
        add_labels(batch, examples)
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
