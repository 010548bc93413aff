"""The run's word vocabulary (Distilled-BiLSTM's word-level student), built once from the training split and handed
to the word_vocab formatter and to the student: both must agree on every id, and neither reads the other.

It counts the training rows the run reads ([data] max_examples applies) but never the augmented rows of
[data] use_aug or the unlabeled rows of [data] transfer_file: the vocabulary is the labeled data's.

It also records whether those rows are sentence pairs (`WordVocab.pairs`): then the formatter yields each
sentence as its own id sequence and the student is Tang et al.'s siamese BiLSTM (2019, section 3.1), so the
two cannot disagree on the layout either. The split's rows decide it, whatever the dataset type: a GLUE pair
task, or a JSONL file with [data] text_b_field."""
import copy

from formatter.word_vocab import WordVocab
from init.registry import dataset_list, lookup


def build_word_vocab(config):
    """WordVocab of [word_vocab] vocab_size words (at most max_length per text) from the labeled training rows."""
    size, max_length = config.get("word_vocab", "vocab_size"), config.get("word_vocab", "max_length")
    plain = copy.deepcopy(config)
    plain.set("data", "use_aug", False)
    plain.set("data", "transfer_file", "")
    dataset = lookup(dataset_list, plain, "data", "train_dataset_type")(plain, "train")
    rows = [dataset[i] for i in range(len(dataset))]
    texts = (t for row in rows for t in (row["text_a"], row["text_b"]) if t)
    return WordVocab.build(texts, size, max_length, pairs=any(row["text_b"] is not None for row in rows))
