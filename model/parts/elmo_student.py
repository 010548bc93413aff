"""The ELMo student: Tang et al.'s BiLSTM classifier (model/parts/bilstm.py) reading ELMo representations of its words
(Peters et al. 2018, section 3.3) from a biLM pretrained by the elmo_lm stage (model/parts/bilm.py).

Per word k: ELMo_k = gamma * sum_j softmax(s)_j h_kj over the biLM's layers (ScalarMix), concatenated after the
task model's own word vector x_k as ELMo does, [x_k; ELMo_k] (`[elmo] word_vectors`; x_k starts as a trainable copy
of the biLM's token embeddings), then Tang's one-layer BiLSTM, [last forward; last backward] state, ReLU layer and
logits; sentence pairs go through Tang's siamese model (each sentence on its own, [h1, h2, h1 * h2, |h1 - h2|]).
`[elmo] finetune_bilm = false` (ELMo's default use) freezes the biLM, keeps it in eval mode (no dropout) and runs it
without gradients: only s, gamma, x_k, the BiLSTM and the classifier train. `true` trains the biLM with the task
(dropout on as in its pretraining).

Built under a private RNG seeded by [train] seed, so elmo_bilstm and its no-teacher twin elmo_bilstm_cls start from
identical weights. Exported as config.json + model.safetensors with the biLM inside (model_type kdw_elmo_bilstm);
load with `ElmoBiLSTMClassifier.from_pretrained(dir)` and the words with `WordVocab.from_pretrained(dir)`."""
from types import SimpleNamespace

import torch
from torch import nn

from model.parts.bilm import BiLM, ScalarMix
from model.parts.bilstm import BiLSTMClassifier
from model.parts.plain_export import read_settings, read_weights
from pretrained.loading import resolve_model_path
from utils.errors import ConfigError


class ElmoBiLSTMClassifier(BiLSTMClassifier):
    """Tang's BiLSTM over [x_k; ELMo_k]: inherits its sentence encoding, siamese pairs, head and export; only what the
    BiLSTM reads (`inputs`) differs. Tang's constructor is not run: the modules differ (no lone word table when
    word_vectors is false, a wider BiLSTM input)."""

    model_type = "kdw_elmo_bilstm"

    def __init__(self, bilm, num_labels, hidden_size=150, fc_size=200, dropout=0.1, pad_id=0, pair=False,
                 word_vectors=True, finetune_bilm=False):
        nn.Module.__init__(self)
        self.config = SimpleNamespace(bilm=dict(bilm), num_labels=num_labels, hidden_size=hidden_size, fc_size=fc_size,
                                      dropout=dropout, pad_id=pad_id, pair=bool(pair), word_vectors=bool(word_vectors),
                                      finetune_bilm=bool(finetune_bilm))
        self.bilm = BiLM(**bilm)
        width = self.bilm.config.embedding_size
        self.mix = ScalarMix(self.bilm.config.num_layers + 1)
        self.embedding = nn.Embedding(self.bilm.config.vocab_size, width, padding_idx=pad_id) if word_vectors else None
        self.lstm = nn.LSTM((3 if word_vectors else 2) * width, hidden_size, num_layers=1, batch_first=True,
                            bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear((8 if pair else 2) * hidden_size, fc_size)
        self.out = nn.Linear(fc_size, num_labels)
        self.bilm.requires_grad_(self.config.finetune_bilm)

    def get_input_embeddings(self):
        """The table word ids index (the biLM's: its vocabulary is the run's)."""
        return self.bilm.embedding

    def train(self, mode=True):
        super().train(mode)
        if not self.config.finetune_bilm:
            self.bilm.eval()  # frozen: ELMo's features as pretrained, no dropout
        return self

    def elmo(self, word_ids, word_lengths):
        """(B, L, 2d) ELMo_k of every word: the scalar mix of the biLM's layers (no gradient into a frozen biLM)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.finetune_bilm):
            layers = self.bilm.layers(word_ids, word_lengths)
        return self.mix(layers)

    def inputs(self, word_ids, word_lengths):
        elmo = self.elmo(word_ids, word_lengths)
        return torch.cat([self.embedding(word_ids), elmo], -1) if self.embedding is not None else elmo


def build_elmo_student(config, num_labels, vocab):
    """The ELMo student over the biLM exported in [model] pretrained (an elmo_lm run or its student/ folder), with
    [bilstm] sizes and [elmo] word_vectors / finetune_bilm; the run's vocabulary must be the biLM's own."""
    name = config.get("model", "pretrained")
    path = resolve_model_path(name)
    try:
        settings = read_settings(path, BiLM.model_type)
    except ValueError as err:
        raise ConfigError(f"{config.source('model', 'pretrained')}: [model] pretrained = {name}: {err}, not a biLM of "
                          "the elmo_lm stage; train one with config/general/elmo_lm.config") from None
    if settings["vocab_size"] != len(vocab):
        raise ConfigError(f"{config.source('model', 'pretrained')}: [model] pretrained = {name}: its biLM has "
                          f"{settings['vocab_size']} words, this run's vocabulary {len(vocab)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("train", "seed"))
        model = ElmoBiLSTMClassifier(settings, num_labels, config.get("bilstm", "hidden_size"), config.get("bilstm", "fc_size"),
                                     config.get("bilstm", "dropout"), vocab.pad_id, vocab.pairs,
                                     config.get("elmo", "word_vectors"), config.get("elmo", "finetune_bilm"))
    model.bilm.load_state_dict(read_weights(path))
    if model.embedding is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(model.bilm.embedding.weight)
    return model.train()
