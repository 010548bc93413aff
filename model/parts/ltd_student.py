"""The LTD student (model/ltd.py): an IDF-weighted mean of word vectors, an optional linear projection, and for tasks
a linear classification head.

Sentence embedding of a text with word ids w_1..w_n (n >= 1; an empty text gives the zero vector):

    e = (1 / n) * sum_i idf(w_i) * v(w_i)          then  e <- W e + b   ([ltd] projection_dim > 0)
                                                   then  e <- e / |e|   (sentence encoders whose teacher normalises)

i.e. the idf is folded into the vectors and the mean is over the text's tokens (Model2Vec's and Tokenlearn's
convention), not the textbook sum(idf * v) / sum(idf): so the exported table row of w is exactly idf(w) * v(w) and a
plain sentence-transformers StaticEmbedding (an EmbeddingBag in mean mode) computes e (export below). v is trained,
idf is a fixed buffer (saved in the checkpoint and the export). Classifier: logits = head(e) for one text, and for
two texts head([e_a, e_b, e_a * e_b, |e_a - e_b|]) (the concatenate-compare features of Tang et al.'s siamese model).

Exported as config.json + model.safetensors (model/parts/plain_export.py) + vocab.json (the words, their idf and the
segmenter; formatter/idf_vocab.py): `LtdStudent.from_pretrained(dir)`, `IdfVocab.from_pretrained(dir)`. With the
`pieces` segmenter the same folder is also a sentence-transformers model of e: [StaticEmbedding (the teacher's
tokenizer, rows idf(w) * v(w); pieces outside the vocabulary take <unk>'s row), Dense (identity activation) when
projected, Normalize when normalised], each module in its own sub-folder, which `SentenceTransformer(dir)` loads
without this code. Other segmenters cannot be expressed as a tokenizers.Tokenizer: their export is the own format only."""
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from model.parts.plain_export import load_plain, save_plain

MODEL_TYPE = "kdw_ltd"


@dataclass
class LtdOutput:
    embeddings: torch.Tensor  # (B, D) of the first text
    b_embeddings: Optional[torch.Tensor] = None  # (B, D) of the second text, when given
    logits: Optional[torch.Tensor] = None  # classifier only


class LtdStudent(nn.Module):
    model_type = MODEL_TYPE

    def __init__(self, vocab_size, dim, projection_dim=0, num_labels=0, normalize=False, pair=False, pad_id=0):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, dim=dim, projection_dim=projection_dim,
                                      num_labels=num_labels, normalize=bool(normalize), pair=bool(pair), pad_id=pad_id)
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.register_buffer("idf", torch.zeros(vocab_size))
        self.projection = nn.Linear(dim, projection_dim) if projection_dim else None
        width = projection_dim or dim
        self.classifier = nn.Linear((4 if pair else 1) * width, num_labels) if num_labels else None

    @property
    def width(self):
        """Width of the sentence embedding."""
        return self.config.projection_dim or self.config.dim

    def get_input_embeddings(self):
        return self.embedding

    def folded_table(self):
        """(V, dim) rows idf(w) * v(w): what the mean runs over."""
        return self.embedding.weight * self.idf.unsqueeze(-1)

    def embed(self, word_ids, word_lengths):
        """(B, D) sentence embeddings of padded id rows (the formula in the module docstring)."""
        vectors = self.embedding(word_ids) * self.idf[word_ids].unsqueeze(-1)
        mask = torch.arange(word_ids.shape[1], device=word_ids.device)[None, :] < word_lengths[:, None]
        summed = (vectors * mask.unsqueeze(-1).to(vectors.dtype)).sum(1)
        e = summed / word_lengths.clamp(min=1).unsqueeze(-1).to(summed.dtype)
        if self.projection is not None:
            e = self.projection(e)
        return F.normalize(e, dim=-1) if self.config.normalize else e

    def forward(self, word_ids, word_lengths, b_word_ids=None, b_word_lengths=None, output_hidden_states=False):
        """Embeddings of each text and, for a classifier, logits; `output_hidden_states` is accepted for the KD
        interface and ignored."""
        if self.config.pair and self.classifier is not None and b_word_ids is None:
            raise ValueError("this LTD classifier reads two texts per row")
        a = self.embed(word_ids, word_lengths)
        b = self.embed(b_word_ids, b_word_lengths) if b_word_ids is not None else None
        logits = None
        if self.classifier is not None:
            logits = self.classifier(torch.cat([a, b, a * b, (a - b).abs()], dim=-1) if self.config.pair else a)
        return LtdOutput(embeddings=a, b_embeddings=b, logits=logits)

    def save_pretrained(self, directory):
        save_plain(self, directory, self.model_type, vars(self.config))

    @classmethod
    def from_pretrained(cls, directory):
        return load_plain(cls, directory, cls.model_type)


def export_ltd(student, vocab, directory, teacher_tokenizer):
    """config.json + model.safetensors + vocab.json (own format) always; for `pieces` also the sentence-transformers
    files: modules.json and one sub-folder per module (0_StaticEmbedding, 1_Dense, 2_Normalize)."""
    if vocab.segmenter == "pieces":
        model = sentence_transformer(student, vocab, teacher_tokenizer)
        model[0].save_in_root = False  # its model.safetensors would be the student's own: a sub-folder instead
        model.save(str(directory), create_model_card=False)
    student.save_pretrained(directory)
    vocab.save_pretrained(directory)


@torch.no_grad()
def sentence_transformer(student, vocab, teacher_tokenizer):
    """The student's sentence embedding as a SentenceTransformer: [StaticEmbedding, Dense?, Normalize?]."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding
    from pretrained.st_dense import dense_module
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_str(teacher_tokenizer.backend_tokenizer.to_str())
    tokenizer.no_truncation()
    size = max(len(teacher_tokenizer), tokenizer.get_vocab_size(with_added_tokens=True))
    rows = [vocab.stoi.get(piece, vocab.unk_id) for piece in teacher_tokenizer.convert_ids_to_tokens(list(range(size)))]
    table = student.folded_table().detach().float().cpu()[torch.tensor(rows, dtype=torch.long)]
    modules = [StaticEmbedding(tokenizer, embedding_weights=table.contiguous())]
    if student.projection is not None:
        modules.append(dense_module(student.projection))
    if student.config.normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu")
