"""Logit-only forwards run the last encoder layer for the [CLS] position alone.

A BERT / RoBERTa / XLM-R sequence classifier reads nothing of the last layer's output but position 0, and
inside a transformer layer a position sees the others only through its attention query. So when a loss
needs the logits only (Hinton KD, the teacher-logit cache, evaluation), the last layer computes keys and
values for every token but its query, attention output, feed-forward and LayerNorms for [CLS] alone:
about 2/12 of that layer's matmuls instead of 12/12, forward and backward. Logits and gradients are
those of the full forward up to float rounding (tests/test_cls_only.py). Models or layers of another
shape run unchanged."""
import contextlib
import functools
import sys
import weakref

from pretrained.structure import encoder_layers

CLS_HEADS = ("BertForSequenceClassification", "RobertaForSequenceClassification",
             "XLMRobertaForSequenceClassification")


def _bert_like(layer):
    attention = getattr(layer, "attention", None)
    self_attention = getattr(attention, "self", None)
    return (all(hasattr(self_attention, name) for name in ("query", "key", "value", "num_attention_heads",
                                                          "attention_head_size", "scaling", "dropout", "config"))
            and hasattr(attention, "output") and hasattr(layer, "feed_forward_chunk")
            and not getattr(layer, "is_decoder", False))


_LAST_LAYER = weakref.WeakKeyDictionary()  # model -> its last layer, or None when unsupported (looked up once)


def _supported_last_layer(model):
    if model not in _LAST_LAYER:
        layer = None
        if type(model).__name__ in CLS_HEADS:
            try:
                layer = encoder_layers(model)[-1]
            except Exception:  # noqa: BLE001 - no recognisable layer list: run the model unchanged
                layer = None
        _LAST_LAYER[model] = layer if layer is not None and _bert_like(layer) else None
    return _LAST_LAYER[model]


def supports_cls_only(model):
    """True when `model` is a sequence classifier reading position 0 whose last layer has BERT's shape."""
    return _supported_last_layer(model) is not None


def cls_only_forward(layer, hidden_states, attention_mask=None, *args, **kwargs):
    """A BERT-style layer's forward for [CLS] only: (B, L, H) in, (B, 1, H) out, the [CLS] row of the full
    output. Installed as the layer's own forward, so HF's output recorders (hidden states are recorded
    from BertLayer calls) still see the layer's input."""
    attention = layer.attention.self
    batch, length, _ = hidden_states.shape
    heads, width = attention.num_attention_heads, attention.attention_head_size
    cls = hidden_states[:, :1]
    query = attention.query(cls).view(batch, 1, heads, width).transpose(1, 2)
    key = attention.key(hidden_states).view(batch, length, heads, width).transpose(1, 2)
    value = attention.value(hidden_states).view(batch, length, heads, width).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
        attention_mask = attention_mask[:, :, :1, :]
    attend = _attention_function(attention)
    context, _ = attend(attention, query, key, value, attention_mask,
                        dropout=attention.dropout.p if attention.training else 0.0, scaling=attention.scaling)
    context = context.reshape(batch, 1, heads * width)
    return layer.feed_forward_chunk(layer.attention.output(context, cls))


def _attention_function(attention):
    """The attention kernel the model itself is configured with (sdpa, eager, ...)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    eager = sys.modules[type(attention).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)


@contextlib.contextmanager
def cls_only_last_layer(model, enabled=True):
    """Within the block, `model`'s logits-only forwards compute the last layer for [CLS] only
    (no-op when disabled or unsupported; the last entry of output_hidden_states is then (B, 1, H))."""
    layer = _supported_last_layer(model) if enabled else None
    if layer is None:
        yield
        return
    layer.forward = functools.partial(cls_only_forward, layer)  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        del layer.forward
