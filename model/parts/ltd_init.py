"""The LTD student's word table, initialised from the teacher as Model2Vec's distill does (MinishLab/model2vec,
model2vec/distill/inference.py): every vocabulary item goes through the teacher once, as its own short input, and
its output states are mean-pooled; the table is then reduced by PCA to [ltd] dim.

- a word piece (`pieces`, and <unk> as the teacher's unknown token) is the input [CLS] piece [SEP], pooled over all
  three positions (Model2Vec's path for its tokenizer's own vocabulary, without its swap of [CLS] and [SEP]);
- a word (`whitespace`, `jieba`) is the teacher tokenizer's encoding of it with its special tokens, pooled over the
  word's own pieces (Model2Vec's path for a custom vocabulary); a word it cannot spell pools over every position;
- <pad> is the zero vector.
Output states: a classifier teacher's last hidden layer; a sentence-transformers teacher's token embeddings (its
Transformer module's output, before pooling).

PCA: scikit-learn's PCA with the full SVD (svd_solver="full"), as Model2Vec uses: exact rather than the randomised
torch.pca_lowrank, and deterministic (LAPACK SVD, signs fixed by svd_flip), so the same teacher and words give the
same table bit for bit; it centres the vectors, which removes the direction every teacher output shares. [ltd] dim =
0 keeps the teacher's width without PCA. Model2Vec's Zipf / SIF weighting is not applied: the IDF is LTD's weight."""
import numpy as np
import torch

from model.parts.ltd_student import LtdStudent
from model.parts.sentence_embedding import SentenceTeacher
from pretrained.loading import load_tokenizer
from pretrained.sources import teacher_tokenizer_source
from utils.errors import ConfigError

BATCH = 256


def token_states(teacher, ids, mask):
    """(B, L, H) output states of the teacher for token ids."""
    if isinstance(teacher, SentenceTeacher):
        return teacher.st[0]({"input_ids": ids, "attention_mask": mask})["token_embeddings"]
    return teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]


def special_frame(tokenizer):
    """(ids before, ids after) the text that the tokenizer's special tokens put around one text ([CLS], [SEP])."""
    plain, full = tokenizer("a", add_special_tokens=False)["input_ids"], tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    return [], []


def item_inputs(vocab, tokenizer):
    """[(ids, pool mask)] for <unk> and every word of the vocabulary, in id order."""
    before, after = special_frame(tokenizer)

    def piece(token_id):
        ids = before + [token_id] + after
        return ids, [1] * len(ids)

    items = [piece(tokenizer.unk_token_id) if tokenizer.unk_token_id is not None else ([], [])]
    if vocab.segmenter == "pieces":
        return items + [piece(i) for i in tokenizer.convert_tokens_to_ids(vocab.words)]
    enc = tokenizer(vocab.words, add_special_tokens=True, return_special_tokens_mask=True) if vocab.words else None
    for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"]) if enc else ():
        own = [1 - s for s in special]
        items.append((ids, own if any(own) else [1] * len(ids)))
    return items


@torch.inference_mode()
def teacher_vectors(teacher, tokenizer, vocab):
    """(len(vocab) - 1, H) float64 mean-pooled teacher outputs of <unk> and the words (rows 1.. of the table)."""
    items = item_inputs(vocab, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(teacher.parameters()).device
    out = []
    for start in range(0, len(items), BATCH):
        chunk = items[start:start + BATCH]
        width = max(1, max(len(ids) for ids, _ in chunk))
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask, pool = torch.zeros_like(ids), torch.zeros(len(chunk), width)
        for row, (item, keep) in enumerate(chunk):
            ids[row, :len(item)] = torch.tensor(item, dtype=torch.long)
            mask[row, :len(item)] = 1
            pool[row, :len(keep)] = torch.tensor(keep, dtype=torch.float)
        states = token_states(teacher, ids.to(device), mask.to(device)).float().cpu()
        out.append((states * pool.unsqueeze(-1)).sum(1) / pool.sum(1, keepdim=True).clamp(min=1))
    return torch.cat(out).double().numpy()


def reduce(vectors, dim, config):
    """vectors (n, H) -> (n, dim) by PCA; dim 0 keeps them as they are."""
    if not dim:
        return vectors
    n, width = vectors.shape
    if dim > min(n, width):
        raise ConfigError(f"{config.source('ltd', 'dim')}: [ltd] dim = {dim}: PCA of {n} vocabulary items of "
                          f"{width}-wide teacher vectors gives at most {min(n, width)} components; use 0 (the "
                          f"teacher's width, no PCA) or at most {min(n, width)}")
    from sklearn.decomposition import PCA
    return PCA(n_components=dim, svd_solver="full").fit_transform(vectors)


def teacher_table(config, teacher, tokenizer, vocab):
    """(len(vocab), dim) float32 word table: <pad> zero, then the PCA-reduced teacher vectors of <unk> and the words."""
    vectors = reduce(teacher_vectors(teacher, tokenizer, vocab), config.get("ltd", "dim"), config)
    table = torch.zeros(len(vocab), vectors.shape[1])
    table[1:] = torch.from_numpy(np.ascontiguousarray(vectors)).float()
    return table


def build_ltd_student(config, vocab, teacher, num_labels, normalize=False):
    """The LTD student for this run's vocabulary (init/ltd_vocab.py): word table from the teacher, idf from the
    vocabulary; the projection and head are drawn under a private RNG seeded by [train] seed."""
    table = teacher_table(config, teacher, load_tokenizer(teacher_tokenizer_source(config), "[distill] teacher"), vocab)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("train", "seed"))
        student = LtdStudent(len(vocab), table.shape[1], config.get("ltd", "projection_dim"), num_labels, normalize,
                             vocab.pairs, vocab.pad_id)
    with torch.no_grad():
        student.embedding.weight.copy_(table)
        student.idf.copy_(torch.tensor(vocab.idf, dtype=torch.float))
    return student
