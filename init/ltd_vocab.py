"""The LTD student's vocabulary and IDF (formatter/idf_vocab.py), built once per run from the training rows that
init/word_vocab.py reads for every word-level formatter, and handed to the ltd formatter and to the student: train,
valid, test, test.py and predict.py rebuild it identically, so no file has to travel with a checkpoint."""
from formatter.idf_vocab import IdfVocab
from formatter.segmenters import make_segmenter
from pretrained.loading import load_tokenizer
from pretrained.sources import teacher_tokenizer_source


def build_ltd_vocab(config, rows, pairs):
    """IdfVocab of [ltd] vocab_size words over the texts of `rows` (each text one document), cut by [ltd] segmenter."""
    teacher = teacher_tokenizer_source(config) if config.get("ltd", "segmenter") == "pieces" else None
    segment = make_segmenter(config, load_tokenizer(teacher, "[distill] teacher") if teacher else None)
    texts = [text for row in rows for text in (row["text_a"], row["text_b"]) if text is not None]
    return IdfVocab.build(segment.many(texts), config.get("ltd", "vocab_size"), segment.name, pairs)
