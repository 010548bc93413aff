"""Where an HF encoder keeps its transformer blocks: read by the feature helpers (model/parts/features.py) and the
[CLS]-only last layer (efficiency/cls_only.py)."""
from torch import nn

from utils.errors import ConfigError


def encoder_layers(model):
    """The ModuleList of transformer blocks (BERT/RoBERTa/XLM-R `encoder.layer`, DistilBERT `transformer.layer`)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (name.endswith("encoder.layer") or name.endswith("transformer.layer")
                                                  or name.endswith("encoder.layers")):
            return module
    raise ConfigError(f"{type(model).__name__}: no encoder layer list found (expected encoder.layer or transformer.layer)")
