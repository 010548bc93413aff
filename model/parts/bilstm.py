"""The BiLSTM student of Distilled-BiLSTM (Tang et al. 2019) and its builder from [bilstm].

Tang et al. 2019, section 3.1. One sentence (Figure 1): word embeddings -> one bidirectional LSTM layer ->
h = [last forward state; last backward state] -> ReLU FC -> logits (the softmax is the loss's).
A sentence pair (Figure 2, the siamese model): the SAME embedding and BiLSTM (one module) encode each sentence on
its own into h1 and h2 as above, the concatenate-compare features f(h1, h2) = [h1, h2, h1 * h2, |h1 - h2|]
(8 * hidden_size wide) go to the same ReLU FC -> logits. Only the ReLU layer's input width differs, so a
single-sentence model is built exactly as before the pair path existed (same modules, same initial weights).
Sequences are packed, so a padded batch gives each example the logits it gets alone, and one side's padding
never reaches the other side's vector; the two sides of a batch run through the LSTM in one call (2B sequences).
Defaults (config/default.config [bilstm]): 150 LSTM units per direction and a 200-unit ReLU layer, as
the paper's single-sentence model; the pair model takes the same defaults (set [bilstm] hidden_size / fc_size
per task to tune them). Departures: dropout 0.1 on the sentence vector (pair: on the features) and on the ReLU
layer is this framework's regulariser (kept from the single-sentence model), not the paper's; and the word
vectors (below). Tang et al. released no code that we know of: this follows the paper's text and figures.

Word vectors: the paper starts from word2vec, which is not available offline here. `embedding_init =
pretrained` (or `teacher`) starts each word at the mean of the input embeddings of its word pieces in
[model] pretrained (or the teacher), so the width is that model's (384 for all-MiniLM-L6-v2); words the
source cannot spell start random with the source table's spread; <unk> and <sep> take the source's
[UNK] and [SEP] rows. `random` gives N(0, 1) vectors of `embedding_size` (300 when 0).

The student is built under a private RNG seeded by [train] seed, so distilled_bilstm and its no-teacher
twin `bilstm` start from identical weights whatever else (loading a teacher) used the global RNG.
Exported as config.json + model.safetensors; load with `BiLSTMClassifier.from_pretrained(dir)` and the
vocabulary with `formatter.word_vocab.WordVocab.from_pretrained(dir)` (not an HF AutoModel).
"""
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from model.parts.plain_export import load_plain, save_plain
from utils.errors import ConfigError

MODEL_TYPE = "kdw_bilstm"


@dataclass
class BiLSTMOutput:
    logits: torch.Tensor
    hidden_states: Optional[tuple] = None


class BiLSTMClassifier(nn.Module):
    """Tang et al.'s BiLSTM (pair=False) or its siamese counterpart for sentence pairs (pair=True)."""

    model_type = MODEL_TYPE  # config.json's tag (the ELMo student, model/parts/elmo_student.py, has its own)

    def __init__(self, vocab_size, num_labels, embedding_size=300, hidden_size=150, fc_size=200, dropout=0.1, pad_id=0,
                 pair=False):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, num_labels=num_labels, embedding_size=embedding_size,
                                      hidden_size=hidden_size, fc_size=fc_size, dropout=dropout, pad_id=pad_id,
                                      pair=bool(pair))
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear((8 if pair else 2) * hidden_size, fc_size)  # pair: [h1, h2, h1 * h2, |h1 - h2|]
        self.out = nn.Linear(fc_size, num_labels)

    def get_input_embeddings(self):
        return self.embedding

    def inputs(self, word_ids, word_lengths):
        """(B, L, E) vectors the BiLSTM reads for padded id rows: the word vectors (the ELMo student adds its biLM's mix)."""
        return self.embedding(word_ids)

    def encode(self, word_ids, word_lengths):
        """(B, 2H) sentence vectors [last forward state; last backward state] of padded id rows (Figure 1 (c, d))."""
        packed = pack_padded_sequence(self.inputs(word_ids, word_lengths), word_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        self.lstm.flatten_parameters()
        _, (h_n, _) = self.lstm(packed)  # (2, B, H): the last forward step and the last backward step
        return torch.cat([h_n[0], h_n[1]], dim=-1)

    def encode_pair(self, word_ids, word_lengths, b_word_ids, b_word_lengths):
        """(h1, h2), each (B, 2H): both sides through the one shared encoder in a single call over 2B rows (padded to
        the longer side; packing drops the padding, so neither side sees the other's)."""
        width = max(word_ids.shape[1], b_word_ids.shape[1])
        ids = torch.cat([F.pad(word_ids, (0, width - word_ids.shape[1]), value=self.config.pad_id),
                         F.pad(b_word_ids, (0, width - b_word_ids.shape[1]), value=self.config.pad_id)])
        h = self.encode(ids, torch.cat([word_lengths, b_word_lengths]))
        return h[: len(word_ids)], h[len(word_ids):]

    def forward(self, word_ids, word_lengths, b_word_ids=None, b_word_lengths=None, output_hidden_states=False):
        """Logits (B, num_labels) of one sentence per row, or (pair models) of the pairs (word_ids, b_word_ids);
        `output_hidden_states` is accepted for the KD interface and ignored."""
        if (b_word_ids is not None) != self.config.pair:
            raise ValueError(f"BiLSTMClassifier(pair={self.config.pair}) got "
                             f"{'a second sentence' if b_word_ids is not None else 'no second sentence'}")
        if self.config.pair:
            h1, h2 = self.encode_pair(word_ids, word_lengths, b_word_ids, b_word_lengths)
            features = torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=-1)  # section 3.1, concatenate-compare
        else:
            features = self.encode(word_ids, word_lengths)
        return BiLSTMOutput(logits=self.out(self.dropout(torch.relu(self.fc(self.dropout(features))))))

    def save_pretrained(self, directory):
        save_plain(self, directory, self.model_type, vars(self.config))

    @classmethod
    def from_pretrained(cls, directory):
        return load_plain(cls, directory, cls.model_type)


@torch.no_grad()
def wordpiece_mean_init(weight, vocab, table, tokenizer):
    """Row i = mean input embedding of word i's pieces (words the tokenizer cannot spell stay random)."""
    table = table.detach().float()
    weight.normal_(0.0, float(table.std()))
    weight[vocab.pad_id] = 0.0
    unk = tokenizer.unk_token_id
    for row, token in ((vocab.unk_id, unk), (vocab.sep_id, tokenizer.sep_token_id)):
        if token is not None:
            weight[row] = table[token]
    pieces = tokenizer(vocab.words, add_special_tokens=False)["input_ids"] if vocab.words else []
    for row, ids in enumerate(pieces, start=len(vocab) - len(vocab.words)):
        ids = [i for i in ids if i != unk]
        if ids:
            weight[row] = table[ids].mean(0)


def _embedding_source(config, teacher):
    """(input-embedding table, tokenizer) of the model the word vectors start from, or (None, None)."""
    from pretrained.loading import load_classifier, load_tokenizer, resolve_model_path
    from pretrained.sources import teacher_tokenizer_source
    how = config.get("bilstm", "embedding_init")
    if how == "random":
        return None, None
    if how == "teacher":
        if teacher is None:
            raise ConfigError(f"{config.source('bilstm', 'embedding_init')}: [bilstm] embedding_init = teacher: model "
                              f"'{config.get('model', 'model_name')}' has no teacher; use pretrained or random")
        return teacher.get_input_embeddings().weight, load_tokenizer(teacher_tokenizer_source(config), "[distill] teacher")
    path = resolve_model_path(config.get("model", "pretrained"))
    model = load_classifier(path, "[model] pretrained")
    return model.get_input_embeddings().weight, load_tokenizer(path, "[model] pretrained")


def build_bilstm(config, num_labels, vocab, teacher=None):
    """The BiLSTM student for this run's vocabulary (built once by init/word_vocab.py), initialised from [bilstm]; the
    siamese pair model when the vocabulary's training rows are sentence pairs."""
    width, hidden, fc, dropout = (config.get("bilstm", k) for k in ("embedding_size", "hidden_size", "fc_size", "dropout"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("train", "seed"))
        table, tokenizer = _embedding_source(config, teacher)
        if table is not None and width not in (0, table.shape[1]):
            raise ConfigError(f"{config.source('bilstm', 'embedding_size')}: [bilstm] embedding_size = {width}: embedding_init = "
                              f"{config.get('bilstm', 'embedding_init')} gives {table.shape[1]}-wide vectors; use 0 or {table.shape[1]}")
        width = width or (table.shape[1] if table is not None else 300)
        torch.manual_seed(config.get("train", "seed"))  # the same weights whatever loading the source consumed
        model = BiLSTMClassifier(len(vocab), num_labels, width, hidden, fc, dropout, vocab.pad_id, vocab.pairs)
        if table is not None:
            wordpiece_mean_init(model.embedding.weight, vocab, table, tokenizer)
    return model
