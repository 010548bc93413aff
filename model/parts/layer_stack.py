"""An HF sequence classifier run piece by piece, whatever its family: the embeddings, one transformer layer at a
time, then the task head. BERT-of-Theseus (model/theseus.py) interleaves a teacher's and a student's layers this way.

What differs between the families this knows:
- BERT: embeddings take token_type_ids; layers return a tensor; head = classifier(dropout(pooler(hidden))).
- MPNet: no token types (its pad id is 1 and positions count from 2, both computed by its embeddings from the ids);
  every layer adds the relative position bias the encoder computes once per forward; layers return a tuple; head =
  its classification head on position 0 (dense, tanh, out_proj; no pooler).
"""
import inspect

CLASSIFIERS = ("BertForSequenceClassification", "MPNetForSequenceClassification")  # the ones this file can split


def supported(model):
    """Whether this file knows how to run `model`'s forward piece by piece."""
    return type(model).__name__ in CLASSIFIERS


def embed(model, inputs):
    """The embedding output (B, L, H); token_type_ids go in only where the embeddings take them."""
    embeddings = model.base_model.embeddings
    kwargs = {"input_ids": inputs["input_ids"]}
    if "token_type_ids" in inspect.signature(embeddings.forward).parameters:
        kwargs["token_type_ids"] = inputs.get("token_type_ids")
    return embeddings(**kwargs)


def layer_kwargs(model, hidden):
    """What every layer of `model` takes beside hidden states and mask: MPNet's relative position bias."""
    encoder = model.base_model.encoder
    if hasattr(encoder, "compute_position_bias"):
        return {"position_bias": encoder.compute_position_bias(hidden)}
    return {}


def run_layer(layer, hidden, mask, kwargs):
    """One transformer layer's output states (B, L, H) (BERT returns them, MPNet a tuple that starts with them)."""
    out = layer(hidden, mask, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def head(model, hidden):
    """The task head's logits from the last layer's states, as the model's own forward computes them."""
    if model.config.model_type == "bert":
        return model.classifier(model.dropout(model.base_model.pooler(hidden)))
    return model.classifier(hidden)  # MPNet's head reads position 0 itself
