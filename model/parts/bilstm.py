"""The BiLSTM student of Distilled-BiLSTM (Tang et al. 2019) and its builder from [bilstm].

word embeddings -> one bidirectional LSTM layer -> [last forward state; last backward state] -> ReLU FC
-> logits. Sequences are packed, so a padded batch gives each example the logits it gets alone.
Defaults (config/default.config [bilstm]): 150 LSTM units per direction and a 200-unit ReLU layer, as
the paper's single-sentence model; dropout 0.1 on the sentence vector and the ReLU layer.

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
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from utils.errors import ConfigError

CONFIG_FILE, WEIGHTS_FILE, MODEL_TYPE = "config.json", "model.safetensors", "kdw_bilstm"


@dataclass
class BiLSTMOutput:
    logits: torch.Tensor
    hidden_states: Optional[tuple] = None


class BiLSTMClassifier(nn.Module):
    def __init__(self, vocab_size, num_labels, embedding_size=300, hidden_size=150, fc_size=200, dropout=0.1, pad_id=0):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, num_labels=num_labels, embedding_size=embedding_size,
                                      hidden_size=hidden_size, fc_size=fc_size, dropout=dropout, pad_id=pad_id)
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden_size, fc_size)
        self.out = nn.Linear(fc_size, num_labels)

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, word_ids, word_lengths, output_hidden_states=False):
        """Logits (B, num_labels); `output_hidden_states` is accepted for the KD interface and ignored."""
        packed = pack_padded_sequence(self.embedding(word_ids), word_lengths.cpu(), batch_first=True, enforce_sorted=False)
        self.lstm.flatten_parameters()
        _, (h_n, _) = self.lstm(packed)  # (2, B, H): the last forward step and the last backward step
        sentence = self.dropout(torch.cat([h_n[0], h_n[1]], dim=-1))
        return BiLSTMOutput(logits=self.out(self.dropout(torch.relu(self.fc(sentence)))))

    def save_pretrained(self, directory):
        from safetensors.torch import save_file
        Path(directory).mkdir(parents=True, exist_ok=True)
        meta = {"model_type": MODEL_TYPE, "architectures": [type(self).__name__], **vars(self.config)}
        (Path(directory) / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(Path(directory) / WEIGHTS_FILE))

    @classmethod
    def from_pretrained(cls, directory):
        from safetensors.torch import load_file
        meta = json.loads((Path(directory) / CONFIG_FILE).read_text())
        if meta.pop("model_type", None) != MODEL_TYPE:
            raise ValueError(f"{directory}: not a {MODEL_TYPE} export")
        meta.pop("architectures", None)
        model = cls(**meta)
        model.load_state_dict(load_file(str(Path(directory) / WEIGHTS_FILE)))
        return model.eval()


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
    """The BiLSTM student for this run's vocabulary (built once by init/word_vocab.py), initialised from [bilstm]."""
    width, hidden, fc, dropout = (config.get("bilstm", k) for k in ("embedding_size", "hidden_size", "fc_size", "dropout"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("train", "seed"))
        table, tokenizer = _embedding_source(config, teacher)
        if table is not None and width not in (0, table.shape[1]):
            raise ConfigError(f"{config.source('bilstm', 'embedding_size')}: [bilstm] embedding_size = {width}: embedding_init = "
                              f"{config.get('bilstm', 'embedding_init')} gives {table.shape[1]}-wide vectors; use 0 or {table.shape[1]}")
        width = width or (table.shape[1] if table is not None else 300)
        torch.manual_seed(config.get("train", "seed"))  # the same weights whatever loading the source consumed
        model = BiLSTMClassifier(len(vocab), num_labels, width, hidden, fc, dropout, vocab.pad_id)
        if table is not None:
            wordpiece_mean_init(model.embedding.weight, vocab, table, tokenizer)
    return model
