"""ELMo's bidirectional language model (Peters et al. 2018, "Deep contextualized word representations") at small
scale, word-level, and ELMo's scalar mix of its layers.

The biLM (section 3.1): a forward LSTM language model reads a sentence left to right and predicts each next word, a
separate backward LSTM language model reads it right to left and predicts each previous word; the two share only the
token embeddings and the softmax, whose weight is the token embedding table itself (tied, with a softmax bias of its
own). Each direction is `num_layers` (2, as ELMo) LSTM layers whose cells are projected down to the embedding width
(ELMo's LSTMP: 4096 cells, 512 projections), with a residual connection from each layer's input to its output above
the first (ELMo's "residual connection from the first to second layer"), dropout on each layer's input and on the
top states before the softmax (bilm-tf's training). As in ELMo, every sentence is wrapped in boundary tokens,
<S> w1 .. wn </S>: the forward LM reads <S> w1 .. wn and predicts w1 .. wn </S>, the backward LM reads </S> wn .. w1
and predicts wn .. w1 <S>, n + 1 predictions each way. One token serves both boundaries here, the word vocabulary's
<sep> (formatter/word_vocab.py: its id 2 appears in no batch), since each direction sees a boundary in one role only.
loss = forward NLL + backward NLL, each a mean over the real predictions (model/parts/loss.py bilm_nll_losses).

Layers for ELMo (section 3.2): layer 0 is the token embedding x_k duplicated, [x_k; x_k] (2d wide, as ELMo's
char-CNN layer), layer j the concatenated states [h_fwd_kj; h_bwd_kj], with the boundary positions removed
(allennlp's remove_sentence_boundaries); ScalarMix gives ELMo_k = gamma * sum_j softmax(s)_j h_kj.

Padding: a row's padding follows its words in both directions (the backward LM reads each row reversed within its
own length), and an LSTM never looks ahead, so padding changes no real position's state, prediction or loss.

Where this departs from ELMo, and why: word ids over the run's word vocabulary (formatter/word_vocab.py; ELMo reads
characters through a CNN with highway layers, so it has no out-of-vocabulary words), default 1024 cells projected to
256 (ELMo: 4096 to 512), a full softmax over a 20,000-word vocabulary (ELMo: a sampled softmax over the 793,471 words
of the 1B Word Benchmark), trained on 100,000 Wikipedia sentences (ELMo: the 1B Word Benchmark, 10 epochs), no cell or
projection clipping. ELMo's pretrained files cannot be installed here (no hub, nothing on the package registries), and
a biLM of ELMo's size does not train on two CPU cores; the architecture and objective are ELMo's, the scale is not.
Exported as config.json + model.safetensors (model/parts/plain_export.py) beside the vocabulary's vocab.json.
"""
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

from model.parts.plain_export import load_plain, save_plain
from utils.errors import ConfigError

MODEL_TYPE = "kdw_bilm"
# torch's CPU LSTM with projections takes its own kernel instead of oneDNN's and says so on every first call; at 1024
# cells projected to 256 it ran faster (forward + backward) than the unprojected 1024-cell LSTM, so the note is noise
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


@dataclass
class BiLMPredictions:
    """Both LMs' logits at the real positions, row-major over (example, position): forward (N, V) against the next
    words, backward (N, V) against the previous words; `rows` (N,) the example of each prediction."""
    forward_logits: torch.Tensor
    backward_logits: torch.Tensor
    forward_targets: torch.Tensor
    backward_targets: torch.Tensor
    rows: torch.Tensor


def add_boundaries(word_ids, word_lengths, boundary_id, pad_id):
    """(B, L + 2) rows <S> w1 .. wn </S> <pad>.. of padded (B, L) id rows; both boundaries are `boundary_id`."""
    batch, width = word_ids.shape
    ids = torch.full((batch, width + 2), pad_id, dtype=word_ids.dtype, device=word_ids.device)
    ids[:, 1:width + 1] = word_ids
    ids[:, 0] = boundary_id
    ids[torch.arange(batch, device=ids.device), word_lengths.to(ids.device) + 1] = boundary_id
    return ids


def reverse_padded(x, lengths):
    """Each row of (B, T, ...) reversed within its first lengths[b] positions, the padding left where it is."""
    steps = torch.arange(x.shape[1], device=x.device)[None]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class BiLM(nn.Module):
    """ELMo's biLM over word ids: separate forward and backward LSTM stacks, tied input/softmax embeddings."""

    model_type = MODEL_TYPE

    def __init__(self, vocab_size, embedding_size=256, lstm_size=1024, num_layers=2, dropout=0.1, pad_id=0, boundary_id=2):
        super().__init__()
        if lstm_size < embedding_size:
            raise ValueError(f"lstm_size {lstm_size} < embedding_size {embedding_size}")
        self.config = SimpleNamespace(vocab_size=vocab_size, embedding_size=embedding_size, lstm_size=lstm_size,
                                      num_layers=num_layers, dropout=dropout, pad_id=pad_id, boundary_id=boundary_id)
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)  # also the softmax weight
        self.softmax_bias = nn.Parameter(torch.zeros(vocab_size))
        projection = embedding_size if lstm_size > embedding_size else 0  # LSTMP: cells projected to the embedding width

        def stack():
            return nn.ModuleList(nn.LSTM(embedding_size, lstm_size, batch_first=True, proj_size=projection)
                                 for _ in range(num_layers))
        self.forward_lstms, self.backward_lstms = stack(), stack()
        self.dropout = nn.Dropout(dropout)

    def get_input_embeddings(self):
        return self.embedding

    def output_weight(self):
        """The softmax weight (V, d): the token embedding table itself (tied)."""
        return self.embedding.weight

    def lm_logits(self, states):
        """Logits over the vocabulary of (..., d) top states: states @ E^T + b, E the tied embedding table."""
        return F.linear(states, self.output_weight(), self.softmax_bias)

    def _run(self, lstms, x):
        """Per-layer outputs of one direction's LSTM stack over (B, T, d) inputs (residual above the first layer)."""
        outputs = []
        for i, lstm in enumerate(lstms):
            lstm.flatten_parameters()
            out, _ = lstm(self.dropout(x))
            x = out + x if i else out
            outputs.append(x)
        return outputs

    def states(self, word_ids, word_lengths):
        """(ids with boundaries (B, T), embeddings (B, T, d), forward outputs, backward outputs): per layer (B, T, d),
        the backward ones back in reading order (position t has read t .. the end)."""
        ids = add_boundaries(word_ids, word_lengths, self.config.boundary_id, self.config.pad_id)
        lengths = word_lengths.to(ids.device) + 2
        x = self.embedding(ids)
        forward = self._run(self.forward_lstms, x)
        backward = [reverse_padded(h, lengths) for h in self._run(self.backward_lstms, reverse_padded(x, lengths))]
        return ids, x, forward, backward

    def forward(self, word_ids, word_lengths):
        """BiLMPredictions of padded (B, L) id rows: n + 1 predictions per direction for a row of n words."""
        ids, _, forward, backward = self.states(word_ids, word_lengths)
        width = ids.shape[1] - 1
        real = torch.arange(width, device=ids.device)[None] < (word_lengths.to(ids.device) + 1)[:, None]  # (B, T - 1)
        top_f, top_b = self.dropout(forward[-1][:, :-1][real]), self.dropout(backward[-1][:, 1:][real])
        return BiLMPredictions(self.lm_logits(top_f), self.lm_logits(top_b), ids[:, 1:][real], ids[:, :-1][real],
                               real.nonzero()[:, 0])

    def layers(self, word_ids, word_lengths):
        """ELMo's layers for each word (boundaries removed): [x; x], then [h_fwd_j; h_bwd_j] per LSTM layer, each (B, L, 2d)."""
        _, x, forward, backward = self.states(word_ids, word_lengths)
        width = word_ids.shape[1]
        out = [torch.cat([x, x], -1)] + [torch.cat([f, b], -1) for f, b in zip(forward, backward)]
        return [h[:, 1:width + 1] for h in out]

    def save_pretrained(self, directory):
        save_plain(self, directory, self.model_type, vars(self.config))

    @classmethod
    def from_pretrained(cls, directory):
        return load_plain(cls, directory, cls.model_type)


class ScalarMix(nn.Module):
    """ELMo's task-specific layer mix (Peters et al. 2018, eq. 1): gamma * sum_j softmax(s)_j h_j. s starts at zero (an
    even mix) and gamma at one, as allennlp's ScalarMix; both train with the task."""

    def __init__(self, num_layers):
        super().__init__()
        self.scalars = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, layers):
        if len(layers) != len(self.scalars):
            raise ValueError(f"ScalarMix over {len(self.scalars)} layers got {len(layers)}")
        weights = torch.softmax(self.scalars, 0)
        return self.gamma * sum(w * h for w, h in zip(weights, layers))


def build_bilm(config, vocab):
    """A new biLM over the run's vocabulary, from [elmo], under a private RNG seeded by [train] seed."""
    width, cells = config.get("elmo", "embedding_size"), config.get("elmo", "lstm_size")
    if cells < width:
        raise ConfigError(f"{config.source('elmo', 'lstm_size')}: [elmo] lstm_size = {cells}: below embedding_size = "
                          f"{width} (each LSTM's cells are projected down to the embedding width); use at least {width}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("train", "seed"))
        return BiLM(len(vocab), width, cells, config.get("elmo", "num_layers"), config.get("elmo", "dropout"),
                    vocab.pad_id, vocab.sep_id)
