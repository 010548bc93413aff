"""FLOPs of the matching models (the VIRT authors' eval_flops_* scripts), counted analytically and measured.

Convention (the same as torch.utils.flop_counter.FlopCounterMode): a multiply-add is 2 FLOPs and only
matrix products count (linear layers, attention q k^T and A v); embeddings lookups, softmax, LayerNorm,
activations and element-wise ops are left out (well under 1% of a transformer layer). The measured count
runs the model with eager attention, because FlopCounterMode does not see CPU fused (sdpa) attention."""
import contextlib

import torch
from torch.utils.flop_counter import FlopCounterMode


def linear_flops(rows, fan_in, fan_out):
    return 2 * rows * fan_in * fan_out


def encoder_layer_flops(length, hidden, intermediate):
    """One BERT layer over `length` tokens: q, k, v, output projections, q k^T, A v, two FFN matrices."""
    return 4 * linear_flops(length, hidden, hidden) + 2 * 2 * length * length * hidden + 2 * linear_flops(length, hidden, intermediate)


def encoder_flops(config, length, layers=None, pooler=False):
    """A BERT-family encoder (HF config) of `layers` layers (default: all) over `length` tokens."""
    layers = config.num_hidden_layers if layers is None else layers
    total = layers * encoder_layer_flops(length, config.hidden_size, config.intermediate_size)
    return total + (linear_flops(1, config.hidden_size, config.hidden_size) if pooler else 0)


@contextlib.contextmanager
def eager_attention(*models):
    """Every HF config reachable from `models` switched to eager attention for the block."""
    configs = {}
    for model in models:
        for module in model.modules():
            config = getattr(module, "config", None)
            if config is not None and hasattr(config, "_attn_implementation") and id(config) not in configs:
                configs[id(config)] = (config, config._attn_implementation)
    try:
        for config, _ in configs.values():
            config._attn_implementation = "eager"
        yield
    finally:
        for config, old in configs.values():
            config._attn_implementation = old


def counted_flops(fn, *models):
    """FLOPs FlopCounterMode records while fn() runs (eager attention in `models`), backward passes included."""
    with eager_attention(*models), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@torch.inference_mode()
def measured_flops(fn, *models):
    """FLOPs of fn() without autograd (models in eval mode, eager attention)."""
    return counted_flops(fn, *models)


def dummy_tower(length, cls_id=2, sep_id=3, token_id=5, batch=1):
    """Batch-size-1 tower inputs of exactly `length` valid tokens (FLOPs depend on length, not content)."""
    ids = torch.full((batch, length), token_id, dtype=torch.long)
    ids[:, 0], ids[:, -1] = cls_id, sep_id
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
