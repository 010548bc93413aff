"""Word segmenters of the LTD student ([ltd] segmenter): text -> the words its vocabulary, IDF and word vectors are
counted over. The XiaoIce framework segments its (Chinese) corpus with jieba before taking the IDF; English needs no
dictionary.

- `pieces`: the teacher tokenizer's word pieces ([distill] teacher), without its special tokens; the only segmenter
  whose student exports as a plain sentence-transformers StaticEmbedding model (model/parts/ltd_student.py), since
  the exported model can only segment with a tokenizers.Tokenizer.
- `whitespace`: lower-cased words, contractions and single punctuation marks (formatter/word_vocab.py's `tokenize`,
  the Distilled-BiLSTM words).
- `jieba`: Chinese words by jieba's default dictionary (and its HMM for unknown words), lower-cased, whitespace
  dropped; an optional dependency (`pip install jieba`)."""
import logging

from formatter.word_vocab import tokenize
from utils.errors import ConfigError

NAMES = ("pieces", "whitespace", "jieba")


class PiecesSegmenter:
    name = "pieces"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def many(self, texts):
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        return [self.tokenizer.convert_ids_to_tokens(row) for row in ids]

    def __call__(self, text):
        return self.many([text])[0]


class WhitespaceSegmenter:
    name = "whitespace"

    def many(self, texts):
        return [tokenize(text) for text in texts]

    def __call__(self, text):
        return tokenize(text)


class JiebaSegmenter:
    name = "jieba"

    def __init__(self):
        self._tokenizer = None  # jieba's dictionary loads on first use (about a second), not when pickled to workers

    def __getstate__(self):
        return {"_tokenizer": None}

    def __call__(self, text):
        if self._tokenizer is None:
            import jieba
            jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict ..." lines on every run
            self._tokenizer = jieba.Tokenizer()
        return [w for w in self._tokenizer.lcut(text.lower()) if w.strip()]

    def many(self, texts):
        return [self(text) for text in texts]


def make_segmenter(config, teacher_tokenizer=None):
    """The [ltd] segmenter; `pieces` segments with the teacher's tokenizer, so it needs one."""
    name = config.get("ltd", "segmenter")
    where = config.source("ltd", "segmenter")
    if name == "pieces":
        if teacher_tokenizer is None:
            raise ConfigError(f"{where}: [ltd] segmenter = pieces: needs [distill] teacher (its tokenizer's word pieces)")
        return PiecesSegmenter(teacher_tokenizer)
    if name == "jieba":
        try:
            import jieba  # noqa: F401
        except ImportError:
            raise ConfigError(f"{where}: [ltd] segmenter = jieba: the jieba package is not installed; "
                              "pip install jieba") from None
        return JiebaSegmenter()
    return WhitespaceSegmenter()
