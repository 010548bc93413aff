"""One place that pulls intermediate features out of HF encoders: hidden states (embeddings + every
layer) from HF outputs, and the q/k/v projections of chosen layers through forward hooks, from
which attention scores and MiniLMv2 relations are computed. A wrong layer index fails with the list
of available layers."""
import contextlib
import math

import torch
from torch import nn

from pretrained.structure import encoder_layers  # noqa: F401  (re-exported: the methods' one feature import)
from utils.errors import ConfigError

QKV_NAMES = {"query": ("query", "q_lin", "q_proj"), "key": ("key", "k_lin", "k_proj"), "value": ("value", "v_lin", "v_proj")}


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


@contextlib.contextmanager
def capture_qkv(model, layer_indices, which=("query", "key", "value"), key="layer"):
    """Within the block, forward passes record {(layer, 'query'|'key'|'value'): tensor (B, L, H)}."""
    layers = encoder_layers(model)
    store, handles = {}, []
    for index in layer_indices:
        index = check_layer(model, index, key)
        for part in which:
            def hook(module, inputs, output, index=index, part=part):
                store[(index, part)] = output
            handles.append(_projection(layers[index], part).register_forward_hook(hook))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def attention_scores(query, key, num_heads, mask=None):
    """Pre-softmax attention scores (B, heads, L, L) = q k^T / sqrt(d_head), padded keys at -inf-like."""
    b, length, width = query.shape
    d = width // num_heads
    q = query.view(b, length, num_heads, d).transpose(1, 2)
    k = key.view(b, key.shape[1], num_heads, d).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    return scores


def hidden_states(model, inputs):
    """(outputs, hidden_states tuple: embeddings output then each layer's output)."""
    out = model(**inputs, output_hidden_states=True)
    return out, out.hidden_states
