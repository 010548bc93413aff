"""Students of the multi-stage cross-lingual methods (Ding et al. 2022), as plain HF ALBERT models.

ALBERT is exactly the two compressions the paper uses, so the student stays loadable by `AutoModel` and
`SentenceTransformer` with no custom code:
- bottleneck embedding: word embeddings vocab x e, then a Linear e -> hidden (ALBERT's embedding_size and
  embedding_hidden_mapping_in);
- parameter recurrence: `layers_to_keep` transformer layers form one shared group that runs `repeat` times
  (num_hidden_groups = 1, inner_group_num = layers_to_keep, num_hidden_layers = repeat).
A BERT-family source (BERT, MiniLM, XLM-R/RoBERTa) is converted layer by layer; an ALBERT source (an earlier
stage's export) is taken as is. Without a bottleneck the source's embeddings are copied and the e -> hidden
mapping starts as the identity, so repeat = 1 with every layer kept computes exactly the source's function.
"""
import copy
import math

import torch
from transformers import AlbertConfig, AlbertModel

from model.parts.layer_map import select_layers
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
    """RoBERTa-family models number positions from pad_token_id + 1; ALBERT from 0."""
    return config.pad_token_id + 1 if config.model_type in ROBERTA_TYPES else 0


def albert_config(source_config, layers, repeat, embedding_size):
    c = source_config
    offset = position_offset(c)
    return AlbertConfig(
        vocab_size=c.vocab_size, embedding_size=embedding_size, hidden_size=c.hidden_size,
        num_hidden_layers=repeat, num_hidden_groups=1, inner_group_num=layers,
        num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size, hidden_act=c.hidden_act,
        hidden_dropout_prob=c.hidden_dropout_prob, attention_probs_dropout_prob=c.attention_probs_dropout_prob,
        max_position_embeddings=c.max_position_embeddings - offset, type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps, pad_token_id=c.pad_token_id, bos_token_id=getattr(c, "bos_token_id", None),
        eos_token_id=getattr(c, "eos_token_id", None), classifier_dropout_prob=0.1)


def svd_bottleneck(word, position, e):
    """Orthonormal basis (e, hidden) of the source's embedding inputs: top-e right singular vectors of the centred
    word table stacked with the position table (weighted up to the word table's row count, since every token
    also carries a position), so sums word + position + type keep most of their variance in e dimensions."""
    hidden = word.shape[1]
    center = torch.eye(hidden) - torch.full((hidden, hidden), 1.0 / hidden)
    stacked = torch.cat([word.float(), position.float() * math.sqrt(word.shape[0] / position.shape[0])]) @ center
    _, _, vh = torch.linalg.svd(stacked, full_matrices=False)
    return vh[:e] @ center


def from_bert(source, layers, repeat, embedding_size, init="svd"):
    """ALBERT student from a BERT-family encoder: `layers` (0-based source layer ids) shared and run `repeat` times;
    embedding_size 0 keeps the source's embeddings (no bottleneck)."""
    hidden = source.config.hidden_size
    e = embedding_size or hidden
    if e > hidden:
        raise ConfigError(f"[multilingual] embedding_size = {e}: larger than the hidden size {hidden}")
    student = AlbertModel(albert_config(source.config, len(layers), repeat, e), add_pooling_layer=False)
    src = source.state_dict()
    prefix = "" if "embeddings.word_embeddings.weight" in src else source.base_model_prefix + "."
    offset = position_offset(source.config)
    state = student.state_dict()
    emb = {k: src[prefix + "embeddings." + k + ".weight"] for k in ("word_embeddings", "position_embeddings", "token_type_embeddings")}
    emb["position_embeddings"] = emb["position_embeddings"][offset:]
    mapping = "encoder.embedding_hidden_mapping_in."
    if e == hidden:
        for k, v in emb.items():
            state[f"embeddings.{k}.weight"] = v.clone()
        for k in ("weight", "bias"):
            state[f"embeddings.LayerNorm.{k}"] = src[prefix + f"embeddings.LayerNorm.{k}"].clone()
        state[mapping + "weight"] = torch.eye(hidden)
        state[mapping + "bias"] = torch.zeros(hidden)
    elif init == "svd":
        # inputs projected on the basis; LayerNorm over e as the identity map; the e -> hidden mapping undoes the
        # projection, rescales (a norm over e dims is sqrt(hidden / e) times one over hidden dims) and applies
        # the source's LayerNorm gain and bias: the source's embedding output, up to the discarded directions
        basis = svd_bottleneck(emb["word_embeddings"], emb["position_embeddings"], e)  # (e, hidden)
        for k, v in emb.items():
            state[f"embeddings.{k}.weight"] = v.float() @ basis.T
        gain, bias = (src[prefix + f"embeddings.LayerNorm.{k}"].float() for k in ("weight", "bias"))
        state["embeddings.LayerNorm.weight"], state["embeddings.LayerNorm.bias"] = torch.ones(e), torch.zeros(e)
        state[mapping + "weight"] = gain[:, None] * basis.T * math.sqrt(hidden / e)
        state[mapping + "bias"] = bias.clone()
    for new, old in enumerate(layers):
        for bert_name, albert_name in LAYER_NAMES.items():
            for k in ("weight", "bias"):
                state[f"encoder.albert_layer_groups.0.albert_layers.{new}.{albert_name}.{k}"] = \
                    src[f"{prefix}encoder.layer.{old}.{bert_name}.{k}"].clone()
    student.load_state_dict(state)
    return student


def from_albert(source, config, bottleneck):
    """An earlier stage's ALBERT export, re-shaped only where that is free (repeat: the layers are shared)."""
    c = source.config
    keep, e = config.get("multilingual", "layers_to_keep"), config.get("multilingual", "embedding_size")
    if c.num_hidden_groups != 1:
        raise ConfigError(f"[model] pretrained: ALBERT with {c.num_hidden_groups} layer groups; expected 1 shared group")
    if keep and keep != c.inner_group_num:
        raise ConfigError(f"[multilingual] layers_to_keep = {keep}: [model] pretrained already keeps {c.inner_group_num} layers")
    if bottleneck and e != c.embedding_size:
        raise ConfigError(f"[multilingual] embedding_size = {e}: [model] pretrained has embedding size {c.embedding_size}")
    if not bottleneck and c.embedding_size != c.hidden_size:
        raise ConfigError(f"[model] pretrained has a bottleneck embedding ({c.embedding_size}); use a rec_bottle_* method")
    student = copy.deepcopy(source)
    student.config.num_hidden_layers = config.get("multilingual", "repeat")
    return drop_pooler(student)


def build_recurrent_student(source, config, bottleneck):
    """The student of bottle_distill / rec_* methods from [model] pretrained (already loaded as `source`)."""
    repeat = config.get("multilingual", "repeat")  # >= 1, and embedding_size >= 1, at load time (default.config)
    if source.config.model_type == "albert":
        return from_albert(source, config, bottleneck)
    if source.config.model_type not in ("bert",) + ROBERTA_TYPES:
        raise ConfigError(f"[model] pretrained: {source.config.model_type} encoders are not supported (BERT, MiniLM, "
                          "RoBERTa, XLM-R or an earlier stage's ALBERT export)")
    n = source.config.num_hidden_layers
    keep = config.get("multilingual", "layers_to_keep") or n
    if keep > n:
        raise ConfigError(f"{config.source('multilingual', 'layers_to_keep')}: [multilingual] layers_to_keep = {keep}: "
                          f"the source has only {n} layers")
    layers = select_layers(n, keep, "first", [])
    e = config.get("multilingual", "embedding_size") if bottleneck else 0
    return from_bert(source, layers, repeat, e, config.get("multilingual", "bottleneck_init"))


def albert_embedding_output(model, input_ids, token_type_ids=None):
    """What the shared layers receive: the (bottleneck) embeddings mapped to the hidden size."""
    return model.encoder.embedding_hidden_mapping_in(model.embeddings(input_ids, token_type_ids=token_type_ids))
