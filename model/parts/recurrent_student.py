"""Students of the multi-stage cross-lingual methods (Ding et al. 2022): model/parts/recurrent_encoder.py's
RecurrentBertModel built from a BERT-family source, or taken from an earlier stage's export.

Followed: the authors' code, github.com/KB-Ding/Multi-stage-Distillaton-Framework:
- stage 2 (model/distillation/bottle_distill.py, lines 26-36): every encoder layer removed, the embedding layer
  replaced by `Small_Embeddings` (lines 300-355): word table vocab x e, then e -> hidden without bias; position and
  token-type embeddings and the LayerNorm at the hidden width;
- stages 3 and 4 (model/distillation/rec_bottle_distill.py lines 25-47, model/multilingual/rec_bottle_mcl.py lines
  30-49): the source's first `layers_to_keep` layers run `repeat` times on stage 2's `Small_Embeddings` (rec_bottle_*)
  or on the source's own embedding layer (rec_distill / rec_mcl: no factorisation, no mapping).
Here stage 2's student keeps the shared layers too (frozen, never run in its loss), so its export alone starts
stage 3, as the authors' stage 3 combines the stage-2 checkpoint with the source's layers.

Departures, each for a reason:
- initialisation (`[multilingual] bottleneck_init`): the authors start stage 2 from a fresh `Small_Embeddings`
  (`random` here: torch's default init of each table, as theirs). `svd` (the default) starts at the source's
  embedding layer with its word table replaced by the best rank-e factorisation (truncated SVD of the table with
  each row centred over the hidden units, the part LayerNorm reads) and its position / type tables and LayerNorm
  copied: at this project's budget (one epoch of 30,000 pairs) most of the vocabulary never occurs in training,
  and a random row stays random; the authors train on millions of pairs;
- positions are numbered from 0 (RoBERTa-family tables shifted by pad + 1 at conversion), see recurrent_encoder.py.
"""
import copy

import torch
from torch import nn

from model.parts.layer_map import select_layers
from model.parts.recurrent_encoder import MODEL_TYPE, RecurrentBertConfig, RecurrentBertModel
from utils.errors import ConfigError

# BERT layer parameter -> ALBERT layer parameter (same tensors; RoBERTa / XLM-R use BERT's names)
LAYER_NAMES = {
    "attention.self.query": "attention.query", "attention.self.key": "attention.key",
    "attention.self.value": "attention.value", "attention.output.dense": "attention.dense",
    "attention.output.LayerNorm": "attention.LayerNorm", "intermediate.dense": "ffn",
    "output.dense": "ffn_output", "output.LayerNorm": "full_layer_layer_norm",
}
ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")


def drop_pooler(model):
    """Sentence embeddings are mean-pooled: the [CLS] pooler is dead weight (and unused params upset DDP)."""
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


def position_offset(config):
    """RoBERTa-family models number positions from pad_token_id + 1; the student from 0."""
    return config.pad_token_id + 1 if config.model_type in ROBERTA_TYPES else 0


def recurrent_config(source_config, layers, repeat, embedding_size):
    c = source_config
    offset = position_offset(c)
    return RecurrentBertConfig(
        vocab_size=c.vocab_size, embedding_size=embedding_size, hidden_size=c.hidden_size,
        num_hidden_layers=repeat, num_hidden_groups=1, inner_group_num=layers,
        num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size, hidden_act=c.hidden_act,
        hidden_dropout_prob=c.hidden_dropout_prob, attention_probs_dropout_prob=c.attention_probs_dropout_prob,
        max_position_embeddings=c.max_position_embeddings - offset, type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps, pad_token_id=c.pad_token_id, bos_token_id=getattr(c, "bos_token_id", None),
        eos_token_id=getattr(c, "eos_token_id", None), classifier_dropout_prob=0.1)


def factorise_word_table(word, e):
    """(vocab x e table, hidden x e projection weight) whose product is the best rank-e approximation of the word
    table with each row centred over the hidden units (LayerNorm discards each row's mean, so only the centred
    part reaches the output)."""
    centred = word.float() - word.float().mean(dim=1, keepdim=True)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    return u[:, :e] * s[:e], vh[:e].T.contiguous()


def fresh_embedding_tables(config):
    """The authors' stage-2 start: a new `Small_Embeddings`, every table at torch's default init (N(0, 1) rows,
    the padding row zero; the projection kaiming-uniform; LayerNorm 1 and 0)."""
    e, hidden = config.embedding_size, config.hidden_size
    return {"word_embeddings.weight": nn.Embedding(config.vocab_size, e, padding_idx=config.pad_token_id).weight,
            "word_projection.weight": nn.Linear(e, hidden, bias=False).weight,
            "position_embeddings.weight": nn.Embedding(config.max_position_embeddings, hidden).weight,
            "token_type_embeddings.weight": nn.Embedding(config.type_vocab_size, hidden).weight,
            "LayerNorm.weight": torch.ones(hidden), "LayerNorm.bias": torch.zeros(hidden)}


def from_bert(source, layers, repeat, embedding_size, init="svd"):
    """Student from a BERT-family encoder: `layers` (0-based source layer ids) shared and run `repeat` times;
    embedding_size 0 (or the hidden size) keeps the source's embedding layer as it is."""
    hidden = source.config.hidden_size
    e = embedding_size or hidden
    if e > hidden:
        raise ConfigError(f"[multilingual] embedding_size = {e}: larger than the hidden size {hidden}")
    config = recurrent_config(source.config, len(layers), repeat, e)
    student = RecurrentBertModel(config)
    src = source.state_dict()
    prefix = "" if "embeddings.word_embeddings.weight" in src else source.base_model_prefix + "."
    state = student.state_dict()
    emb = {k: src[prefix + "embeddings." + k].clone() for k in (
        "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
        "LayerNorm.weight", "LayerNorm.bias")}
    emb["position_embeddings.weight"] = emb["position_embeddings.weight"][position_offset(source.config):]
    if e < hidden and init == "random":
        emb = fresh_embedding_tables(config)
    elif e < hidden:
        emb["word_embeddings.weight"], emb["word_projection.weight"] = factorise_word_table(emb["word_embeddings.weight"], e)
    for k, v in emb.items():
        state["embeddings." + k] = v.detach().clone()
    for new, old in enumerate(layers):
        for bert_name, albert_name in LAYER_NAMES.items():
            for k in ("weight", "bias"):
                state[f"encoder.albert_layer_groups.0.albert_layers.{new}.{albert_name}.{k}"] = \
                    src[f"{prefix}encoder.layer.{old}.{bert_name}.{k}"].clone()
    student.load_state_dict(state)
    return student


def from_export(source, config, bottleneck):
    """An earlier stage's export, re-shaped only where that is free (repeat: the layers are shared)."""
    c = source.config
    keep, e = config.get("multilingual", "layers_to_keep"), config.get("multilingual", "embedding_size")
    factorised = c.embedding_size != c.hidden_size
    if keep and keep != c.inner_group_num:
        raise ConfigError(f"[multilingual] layers_to_keep = {keep}: [model] pretrained already keeps {c.inner_group_num} layers")
    if bottleneck and factorised and e != c.embedding_size:
        raise ConfigError(f"[multilingual] embedding_size = {e}: [model] pretrained has embedding size {c.embedding_size}")
    if bottleneck and not factorised:
        raise ConfigError("[model] pretrained has no bottleneck embedding (a rec_distill / rec_mcl export); a *bottle* "
                          "method starts from stage 2 (bottle_distill) or a rec_bottle_* export")
    if not bottleneck and factorised:
        raise ConfigError(f"[model] pretrained has a bottleneck embedding ({c.embedding_size}); use a rec_bottle_* method")
    student = copy.deepcopy(source)
    student.config.num_hidden_layers = config.get("multilingual", "repeat")
    return drop_pooler(student)


def build_recurrent_student(source, config, bottleneck):
    """The student of bottle_distill / rec_* methods from [model] pretrained (already loaded as `source`)."""
    repeat = config.get("multilingual", "repeat")  # >= 1, and embedding_size >= 1, at load time (default.config)
    kind = source.config.model_type
    if kind == MODEL_TYPE:
        return from_export(source, config, bottleneck)
    if kind == "albert":
        raise ConfigError(f"{config.source('model', 'pretrained')}: [model] pretrained is an ALBERT model: the former "
                          "ALBERT-layout bottleneck export is no longer read; start from a BERT-family encoder or rerun "
                          "stage 2 (bottle_distill)")
    if kind not in ("bert",) + ROBERTA_TYPES:
        raise ConfigError(f"[model] pretrained: {kind} encoders are not supported (BERT, MiniLM, RoBERTa, XLM-R or an "
                          "earlier stage's export)")
    n = source.config.num_hidden_layers
    keep = config.get("multilingual", "layers_to_keep") or n
    if keep > n:
        raise ConfigError(f"{config.source('multilingual', 'layers_to_keep')}: [multilingual] layers_to_keep = {keep}: "
                          f"the source has only {n} layers")
    layers = select_layers(n, keep, "first", [])
    e = config.get("multilingual", "embedding_size") if bottleneck else 0
    return from_bert(source, layers, repeat, e, config.get("multilingual", "bottleneck_init"))
