"""The run's word vocabulary (Distilled-BiLSTM's word-level student), built once from the training split and handed
to the word_vocab formatter and to the student: both must agree on every id, and neither reads the other.

It counts the training rows the run reads ([data] max_examples applies) but never the augmented rows of
[data] use_aug or the unlabeled rows of [data] transfer_file: the vocabulary is the labeled data's."""
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
    texts = (t for i in range(len(dataset)) for t in (dataset[i]["text_a"], dataset[i]["text_b"]) if t)
    return WordVocab.build(texts, size, max_length)
