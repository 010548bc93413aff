"""word_vocab: word-level batches for word-embedding students (Distilled-BiLSTM, Tang et al. 2019).

The vocabulary is built once per run from its training split (init/word_vocab.py, in train, valid, test and
test.py alike, so no file has to travel with a checkpoint) and handed to this formatter and to the student: lower-cased text, split by `_WORD` into words and punctuation; the
`[word_vocab] vocab_size` most frequent words, ties broken alphabetically, after <pad>=0, <unk>=1 and
<sep>=2. It counts the training rows the run reads (`[data] max_examples` applies) but never the augmented
rows of `[data] use_aug` (the same words, re-counted) or the unlabeled rows of `[data] transfer_file`: the
vocabulary is the labeled data's, whatever augmentation or transfer set a run adds. "[MASK]" (Tang's masking
augmentation) is the teacher's mask token and the student's <unk>, as in the paper.

Each text keeps at most `[word_vocab] max_length` words (32 by default). Sentence pairs follow Tang et al.'s
siamese model (section 3.1, Figure 2): each sentence is its own id sequence, cut to max_length words, which
one shared BiLSTM encodes on its own (model/parts/bilstm.py). Whether the run's rows are pairs is a property
of the vocabulary (`WordVocab.pairs`, set from the training split), so formatter and student agree on it as
they agree on every id. <sep> keeps id 2 though no batch uses it any more (pairs were once joined as
`a <sep> b`): removing it would shift every word id and change the initial weights of single-sentence runs.

Batches carry the student's `word_ids` (B, L) padded with <pad> to the longest in the batch and
`word_lengths` (B,) -- the first sentence of a pair -- plus, for pairs, `b_word_ids` (B, L_b) and
`b_word_lengths` (B,) of the second, padded on their own; and, when there is a teacher ([distill] teacher),
the teacher's own BERT inputs as teacher_input_ids / teacher_attention_mask / teacher_token_type_ids
(`[data] max_seq_length`; a pair stays one joined BERT sequence for the teacher).
"""
import collections
import json
import re
from pathlib import Path

import torch

from formatter.labels import add_labels
from pretrained.loading import load_tokenizer
from pretrained.sources import teacher_tokenizer_source
from utils.errors import DataError

PAD, UNK, SEP = "<pad>", "<unk>", "<sep>"
MASK_WORD = "[mask]"
_WORD = re.compile(r"\[mask\]|\w+(?:'\w+)*|'\w+|[^\w\s]")
VOCAB_FILE = "vocab.json"


def tokenize(text):
    """Lower-cased words, contractions ("n't", "'s") and single punctuation marks, in order."""
    return _WORD.findall(text.lower())


class WordVocab:
    """Word <-> id table with the small tokenizer interface the framework uses (len, save_pretrained).

    `pairs`: the run's rows are sentence pairs, each sentence encoded on its own (Tang et al.'s siamese model)."""

    pad_id, unk_id, sep_id = 0, 1, 2

    def __init__(self, words, max_length=32, pairs=False):
        self.itos = [PAD, UNK, SEP] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary words must be unique and differ from <pad>, <unk>, <sep>")
        self.max_length = max_length
        self.pairs = bool(pairs)

    @classmethod
    def build(cls, texts, size, max_length=32, pairs=False):
        """The `size` most frequent words of `texts` (ties: alphabetical); "[mask]" is never a word."""
        counts = collections.Counter(w for text in texts for w in tokenize(text))
        counts.pop(MASK_WORD, None)
        return cls([w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]], max_length, pairs)

    def __len__(self):
        return len(self.itos)

    @property
    def words(self):
        return self.itos[3:]

    def ids(self, text):
        return [self.stoi.get(w, self.unk_id) for w in tokenize(text)[: self.max_length]]

    def encode(self, text):
        """Ids of one text (one sentence of a pair: each is encoded on its own); an empty text is one <unk> (an LSTM
        needs a step)."""
        return self.ids(text) or [self.unk_id]

    def save_pretrained(self, directory):
        """vocab.json beside the exported student: words in id order and the tokenisation used."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        data = {"format": "kdw-word-vocab", "specials": [PAD, UNK, SEP], "words": self.words,
                "max_length": self.max_length, "lowercase": True, "pattern": _WORD.pattern, "mask_word": MASK_WORD,
                "pairs": self.pairs}
        (Path(directory) / VOCAB_FILE).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory):
        data = json.loads((Path(directory) / VOCAB_FILE).read_text(encoding="utf-8"))
        if data.get("format") != "kdw-word-vocab" or data.get("pattern") != _WORD.pattern:
            raise ValueError(f"{directory}/{VOCAB_FILE}: not a word vocabulary of this version")
        return cls(data["words"], data["max_length"], data.get("pairs", False))


class WordVocabFormatter:
    reads_word_vocab = True  # init builds the run's WordVocab once and passes it here and to the student

    def __init__(self, config, mode, word_vocab):
        self.mode = mode
        self.tokenizer = word_vocab
        teacher = teacher_tokenizer_source(config)
        self.teacher_tokenizer = load_tokenizer(teacher, "[distill] teacher") if teacher else None
        self.teacher_max_length = config.get("data", "max_seq_length")

    def padded(self, texts):
        """(ids (B, L) padded with <pad> to the longest, lengths (B,)) of one text per row."""
        encoded = [self.tokenizer.encode(text) for text in texts]
        lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
        word_ids = torch.full((len(encoded), int(lengths.max())), self.tokenizer.pad_id, dtype=torch.long)
        for row, ids in enumerate(encoded):
            word_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return word_ids, lengths

    def check_layout(self, example):
        """A pair run reads two texts per row, a single-sentence run one: anything else is named, not guessed."""
        if (example["text_b"] is not None) != self.tokenizer.pairs:
            has, wants = ("one text", "sentence pairs") if self.tokenizer.pairs else ("two texts", "one text per row")
            raise DataError(f"{example.get('guid', 'example ' + str(example.get('index')))}: has {has}, but this run's "
                            f"BiLSTM student reads {wants} (as its training split does)")

    def __call__(self, examples):
        for ex in examples:
            self.check_layout(ex)
        word_ids, lengths = self.padded([ex["text_a"] for ex in examples])
        batch = {"word_ids": word_ids, "word_lengths": lengths}
        if self.tokenizer.pairs:  # Tang et al.'s siamese model: the second sentence on its own
            batch["b_word_ids"], batch["b_word_lengths"] = self.padded([ex["text_b"] for ex in examples])
        if self.teacher_tokenizer is not None:
            a = [ex["text_a"] for ex in examples]
            b = [ex["text_b"] for ex in examples] if examples[0]["text_b"] is not None else None
            teacher = self.teacher_tokenizer(a, b, padding="longest", truncation=True, max_length=self.teacher_max_length,
                                             return_tensors="pt")
            batch.update({"teacher_" + k: v for k, v in teacher.items()})
        add_labels(batch, examples)
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
