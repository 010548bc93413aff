"""The LTD student's vocabulary and inverse document frequencies, counted once over the training corpus.

Documents: every text of the training rows the run reads (each sentence of a pair, or of a parallel row, is a
document of its own; [data] max_examples applies; augmented and transfer-set rows are left out, as for the
Distilled-BiLSTM words: init/word_vocab.py), segmented by the [ltd] segmenter (formatter/segmenters.py).

Words: the [ltd] vocab_size most frequent words of those documents (by count; ties alphabetical; 0 = every word),
after <pad> = 0 and <unk> = 1. A word outside them reads as <unk>.

IDF: scikit-learn's smooth idf (TfidfVectorizer(smooth_idf=True)), natural logarithm:

    idf(w) = ln((1 + N) / (1 + df(w))) + 1

N = the number of documents, df(w) = the number of documents that contain w at least once. A word in every document
gets 1, never 0; <unk> is counted as one word whose df is the number of documents holding any word outside the
vocabulary (with vocab_size = 0 none do: df 0, the largest idf); <pad> gets 0, so padding adds nothing."""
import collections
import json
import math
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"
VOCAB_FILE = "vocab.json"
FORMAT = "kdw-ltd-vocab"


def smooth_idf(df, n):
    """ln((1 + n) / (1 + df)) + 1: scikit-learn's smooth idf of a word found in df of n documents."""
    return math.log((1 + n) / (1 + df)) + 1.0


class IdfVocab:
    """Word <-> id table with each id's idf, and the small tokenizer interface the loop uses (len, save_pretrained).

    `segmenter` names how texts were cut into words; `pairs`: the run's rows hold two texts, each embedded on its own."""

    pad_id, unk_id = 0, 1

    def __init__(self, words, idf, segmenter, pairs=False, documents=0):
        self.itos = [PAD, UNK] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary words must be unique and differ from <pad> and <unk>")
        if len(idf) != len(self.itos):
            raise ValueError(f"{len(idf)} idf values for {len(self.itos)} ids")
        self.idf = [float(x) for x in idf]
        self.segmenter = segmenter
        self.pairs = bool(pairs)
        self.documents = int(documents)

    @classmethod
    def build(cls, documents, size, segmenter, pairs=False):
        """From documents given as word lists: the `size` most frequent words (0 = all) and every id's idf."""
        documents = [list(doc) for doc in documents]
        counts = collections.Counter(w for doc in documents for w in doc if w not in (PAD, UNK))
        words = sorted(counts, key=lambda w: (-counts[w], w))
        words = words[:size] if size else words
        kept = set(words)
        df = collections.Counter(w for doc in documents for w in set(doc) if w in kept)
        unk_df = sum(1 for doc in documents if any(w not in kept for w in doc))
        n = len(documents)
        idf = [0.0, smooth_idf(unk_df, n)] + [smooth_idf(df[w], n) for w in words]
        return cls(words, idf, segmenter, pairs, n)

    def __len__(self):
        return len(self.itos)

    @property
    def words(self):
        return self.itos[2:]

    def ids(self, words):
        return [self.stoi.get(w, self.unk_id) for w in words]

    def save_pretrained(self, directory):
        """vocab.json: words in id order, their idf, the segmenter and the formula."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, "segmenter": self.segmenter, "specials": [PAD, UNK], "words": self.words,
                "idf": self.idf, "documents": self.documents, "pairs": self.pairs,
                "idf_formula": "ln((1 + N) / (1 + df)) + 1; <pad> 0"}
        (Path(directory) / VOCAB_FILE).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory):
        data = json.loads((Path(directory) / VOCAB_FILE).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{directory}/{VOCAB_FILE}: not an LTD vocabulary")
        return cls(data["words"], data["idf"], data["segmenter"], data.get("pairs", False), data.get("documents", 0))
