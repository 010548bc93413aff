"""One place that pulls intermediate features out of HF encoders: hidden states (embeddings + every
layer) from HF outputs, and the q/k/v projections of chosen layers through forward hooks, from
which attention scores and MiniLMv2 relations are computed. A wrong layer index fails with the list
of available layers.

MPNet adds a relative position bias to every layer's scores (its self-attention receives `position_bias`): the
hooks record it beside q and k, so `layer_scores` gives the scores that model really softmaxes."""
import contextlib
import inspect
import math

import torch
from torch import nn

from pretrained.structure import encoder_layers  # noqa: F401  (re-exported: the methods' one feature import)
from utils.errors import ConfigError

# BERT / RoBERTa / XLM-R `query`, DistilBERT `q_lin`, `q_proj` (BART-style), MPNet `attention.attn.q`
QKV_NAMES = {"query": ("query", "q_lin", "q_proj", "q"), "key": ("key", "k_lin", "k_proj", "k"),
             "value": ("value", "v_lin", "v_proj", "v")}


def check_layer(model, index, key):
    """Validate a 0-based layer index against the model's depth, naming the config key."""
    depth = len(encoder_layers(model))
    if not -depth <= index < depth:
        raise ConfigError(f"{key} = {index}: {type(model).__name__} has layers 0..{depth - 1}")
    return index % depth


def _projection(layer, which):
    for name, module in layer.named_modules():
        if isinstance(module, nn.Linear) and name.split(".")[-1] in QKV_NAMES[which]:
            return module
    raise ConfigError(f"no {which} projection found in {type(layer).__name__}")


def _attention_module(layer):
    """The module that owns the layer's query projection: the self-attention whose forward computes the scores."""
    query = _projection(layer, "query")
    return next(m for m in layer.modules() if any(child is query for child in m.children()))


@contextlib.contextmanager
def capture_qkv(model, layer_indices, which=("query", "key", "value"), key="layer"):
    """Within the block, forward passes record {(layer, 'query'|'key'|'value'): tensor (B, L, H)}, and
    {(layer, 'position_bias'): (B, heads, L, L)} where the layer's self-attention is handed one (MPNet)."""
    layers = encoder_layers(model)
    store, handles = {}, []
    for index in layer_indices:
        index = check_layer(model, index, key)
        for part in which:
            def hook(module, inputs, output, index=index, part=part):
                store[(index, part)] = output
            handles.append(_projection(layers[index], part).register_forward_hook(hook))
        attention = _attention_module(layers[index])
        signature = inspect.signature(attention.forward)
        if "position_bias" in signature.parameters:
            def bias_hook(module, args, kwargs, index=index, signature=signature):
                bias = signature.bind(*args, **kwargs).arguments.get("position_bias")
                if bias is not None:
                    store[(index, "position_bias")] = bias
            handles.append(attention.register_forward_pre_hook(bias_hook, with_kwargs=True))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def attention_scores(query, key, num_heads, mask=None, bias=None):
    """Pre-softmax attention scores (B, heads, L, L) = q k^T / sqrt(d_head) (+ bias, a relative position bias),
    padded keys at -inf-like."""
    b, length, width = query.shape
    d = width // num_heads
    q = query.view(b, length, num_heads, d).transpose(1, 2)
    k = key.view(b, key.shape[1], num_heads, d).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    return scores


def layer_scores(store, layer, num_heads, mask=None):
    """The pre-softmax scores layer `layer` computed in a capture_qkv block: q k^T / sqrt(d), plus the relative
    position bias where the model adds one (MPNet); BERT-family layers add none."""
    return attention_scores(store[(layer, "query")], store[(layer, "key")], num_heads, mask,
                            store.get((layer, "position_bias")))


def hidden_states(model, inputs):
    """(outputs, hidden_states tuple: embeddings output then each layer's output)."""
    out = model(**inputs, output_hidden_states=True)
    return out, out.hidden_states
