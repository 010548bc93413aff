"""The run's word vocabulary (Distilled-BiLSTM's word-level student), built once from the training split and handed
to the word_vocab formatter and to the student: both must agree on every id, and neither reads the other.

It counts the training rows the run reads ([data] max_examples applies) but never the augmented rows of
[data] use_aug or the unlabeled rows of [data] transfer_file: the vocabulary is the labeled data's.

It also records whether those rows are sentence pairs (`WordVocab.pairs`): then the formatter yields each
sentence as its own id sequence and the student is Tang et al.'s siamese BiLSTM (2019, section 3.1), so the
two cannot disagree on the layout either. The split's rows decide it, whatever the dataset type: a GLUE pair
task, or a JSONL file with [data] text_b_field.

`[word_vocab] source = pretrained` takes the words instead from the vocab.json exported beside [model] pretrained (a
word-level general stage's export, e.g. elmo_lm's biLM), so a student built on that model reads every id as it was
pretrained; [word_vocab] max_length and the pair layout are still this run's."""
import copy
from pathlib import Path

from formatter.word_vocab import VOCAB_FILE, WordVocab
from init.ltd_vocab import build_ltd_vocab
from init.registry import dataset_list, lookup
from pretrained.loading import resolve_model_path
from utils.errors import ConfigError


def build_word_vocab(config):
    """WordVocab of [word_vocab] vocab_size words (at most max_length per text) from the labeled training rows."""
    size, max_length = config.get("word_vocab", "vocab_size"), config.get("word_vocab", "max_length")
    plain = copy.deepcopy(config)
    plain.set("data", "use_aug", False)
    plain.set("data", "transfer_file", "")
    dataset = lookup(dataset_list, plain, "data", "train_dataset_type")(plain, "train")
    rows = [dataset[i] for i in range(len(dataset))]
    pairs = any(row["text_b"] is not None for row in rows)
    if config.get("data", "formatter_type") == "ltd":  # the LTD student's words and their IDF (init/ltd_vocab.py)
        return build_ltd_vocab(config, rows, pairs)
    if config.get("word_vocab", "source") == "pretrained":
        return pretrained_words(config, max_length, pairs)
    texts = (t for row in rows for t in (row["text_a"], row["text_b"]) if t)
    return WordVocab.build(texts, size, max_length, pairs=pairs)


def pretrained_words(config, max_length, pairs):
    """The vocabulary exported beside [model] pretrained, with this run's max_length and pair layout."""
    name = config.get("model", "pretrained")
    path = Path(resolve_model_path(name))
    if not (path / VOCAB_FILE).is_file():
        raise ConfigError(f"{config.source('word_vocab', 'source')}: [word_vocab] source = pretrained: [model] pretrained = "
                          f"{name} has no {VOCAB_FILE} (a word-level export, e.g. of the elmo_lm stage)")
    try:
        words = WordVocab.from_pretrained(path).words
    except (ValueError, KeyError) as err:
        raise ConfigError(f"[model] pretrained = {name}: {str(err).splitlines()[0]}") from None
    return WordVocab(words, max_length, pairs)
