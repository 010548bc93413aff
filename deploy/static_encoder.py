"""A static student's sentence embeddings without sentence-transformers: the exported folder ([StaticEmbedding,
Dense?, Normalize?], as model/parts/ltd_student.py writes it) read with safetensors and tokenizers, encoded with a
faster word path. Same numbers as `SentenceTransformer(DIR).encode` (tests/test_static_encoder.py), several times
the sentences per second.

Why our own: at a static model's size the time is the tokenizer, not the table. tokenizers' encode_batch costs
about as much per sentence as the whole rest of the model (one Rust call per batch, offsets, alignments, a Python
Encoding object per sentence). For a BERT WordPiece tokenizer (BertNormalizer with lowercase, BertPreTokenizer: the
pieces students of BERT-vocabulary teachers) a printable-ASCII sentence is normalised and split here in Python with
the same rules (lowercase; every ASCII punctuation character a word of its own, as BERT's _is_punctuation; runs of
letters and digits the other words), and a word maps to its pieces through a dictionary that starts with every
whole-word vocabulary entry (WordPiece takes a whole word that is in the vocabulary as one piece) and remembers each
other word the WordPiece model splits. Any other sentence (accents, CJK, control characters) and any other
tokenizer go through tokenizers itself, so the ids are the library's in every case.
"""
import json
import re
from pathlib import Path

import torch

from utils.errors import ConfigError

BATCH = 64
ASCII_SAFE = re.compile(r"[\t\n\r\x20-\x7e]*")  # printable ASCII and the three whitespace controls only
ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")  # after lower(): letter/digit runs, one punctuation char each
MEMO_LIMIT = 200_000  # words remembered beyond the vocabulary's, so a stream of novel words cannot grow it forever


class StaticEncoder:
    """encode(texts) -> (n, d) float32 tensor, as the exported sentence-transformers folder computes it."""

    def __init__(self, folder, remember=MEMO_LIMIT):
        """remember: how many words outside the vocabulary to keep the WordPiece split of (0: split them afresh each
        time, as a benchmark that re-encodes the same sentences should, so that no round reads an earlier one's work)."""
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        folder = Path(folder)
        modules = read_modules(folder)
        first = folder / modules[0]["path"]
        self.tokenizer = Tokenizer.from_file(str(first / "tokenizer.json"))
        self.table = load_file(str(first / "model.safetensors"))["embedding.weight"]
        self.dense, self.activation, self.normalize = None, None, False
        for module in modules[1:]:
            kind = module["type"].rsplit(".", 1)[-1]
            if kind == "Dense":
                self.dense, self.activation = read_dense(folder / module["path"])
            elif kind == "Normalize":
                self.normalize = True
            else:
                raise ConfigError(f"{folder}/modules.json: module {module['type']} is not one a static encoder has "
                                  "(StaticEmbedding, Dense, Normalize)")
        state = json.loads(self.tokenizer.to_str())
        self.fast = is_bert_wordpiece(state)
        # tokenizers matches added tokens ([CLS], [MASK], ...) in the raw text before normalising: such a text
        # takes the library's path
        added = [t["content"].lower() for t in state.get("added_tokens") or []]
        self.added = re.compile("|".join(map(re.escape, added))) if added else None
        self.memo = {w: [i] for w, i in self.tokenizer.get_vocab().items() if not w.startswith("##")} if self.fast else {}
        self.vocab_words, self.remember = len(self.memo), remember

    def ids(self, text):
        """The tokenizer's ids of one text, without special tokens."""
        lowered = text.lower() if self.fast and ASCII_SAFE.fullmatch(text) else None
        if lowered is not None and not (self.added and self.added.search(lowered)):
            out = []
            for word in ASCII_WORDS.findall(lowered):
                pieces = self.memo.get(word)
                if pieces is None:
                    pieces = [token.id for token in self.tokenizer.model.tokenize(word)]
                    if len(self.memo) < self.vocab_words + self.remember:
                        self.memo[word] = pieces
                out += pieces
            return out
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    @torch.inference_mode()
    def encode(self, texts, batch_size=BATCH):
        out = []
        for start in range(0, len(texts), batch_size):
            ids = [self.ids(text) for text in texts[start:start + batch_size]]
            offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
            flat = torch.tensor([i for x in ids for i in x], dtype=torch.long)
            e = torch.nn.functional.embedding_bag(flat, self.table, offsets, mode="mean")
            if self.dense is not None:
                e = self.activation(torch.nn.functional.linear(e, *self.dense))
            out.append(torch.nn.functional.normalize(e, dim=-1) if self.normalize else e)
        return torch.cat(out) if out else self.table.new_zeros(0, self.width)

    @property
    def width(self):
        return self.dense[0].shape[0] if self.dense is not None else self.table.shape[1]

    def num_parameters(self):
        return self.table.numel() + (sum(t.numel() for t in self.dense if t is not None) if self.dense else 0)


def read_modules(folder):
    path = folder / "modules.json"
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a sentence-transformers folder ({err})") from None
    if not modules or not modules[0]["type"].endswith("StaticEmbedding"):
        raise ConfigError(f"{path}: the first module is not a StaticEmbedding; this is no static model")
    return modules


def read_dense(path):
    """(weight, bias) and the activation of a sentence-transformers Dense module (Identity or Tanh)."""
    from safetensors.torch import load_file
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    activations = {"torch.nn.modules.linear.Identity": lambda x: x, "torch.nn.modules.activation.Tanh": torch.tanh}
    name = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if name not in activations:
        raise ConfigError(f"{path / 'config.json'}: activation_function {name}: expected Identity or Tanh")
    weights = load_file(str(path / "model.safetensors"))
    return (weights["linear.weight"], weights.get("linear.bias")), activations[name]


def is_bert_wordpiece(state):
    """The layout the ASCII path reproduces (state: the tokenizer's JSON): WordPiece under a lowercasing
    BertNormalizer and BertPreTokenizer."""
    normalizer, pre, model = state.get("normalizer") or {}, state.get("pre_tokenizer") or {}, state.get("model") or {}
    return (model.get("type") == "WordPiece" and pre.get("type") == "BertPreTokenizer"
            and normalizer.get("type") == "BertNormalizer" and normalizer.get("lowercase") is True
            and normalizer.get("clean_text") is True)
