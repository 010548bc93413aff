"""A sentence-transformers Dense module (identity activation) and the nn.Linear it holds, both ways: students that
end in a linear projection ship it as their Dense module (model/parts/sentence_embedding.py, model/parts/ltd_student.py),
and later stages and the ONNX export read it back."""
import json
from pathlib import Path

from torch import nn

from utils.errors import ConfigError


def dense_module(linear):
    """A sentence-transformers Dense with identity activation holding a copy of `linear` (fp32, CPU)."""
    from sentence_transformers.sentence_transformer.modules import Dense
    dense = Dense(linear.in_features, linear.out_features, bias=True, activation_function=nn.Identity())
    dense.linear.load_state_dict({k: v.detach().float().cpu() for k, v in linear.state_dict().items()})
    return dense


def load_sentence_dense(folder):
    """The nn.Linear of the Dense module in a sentence-transformers folder's pipeline (modules.json), or None when
    it has none. Read with sentence-transformers' own loader, so any Dense it saved reads back; a Dense with a
    non-identity activation is refused (nothing here trains or deploys one)."""
    path = Path(folder) / "modules.json"
    if not path.is_file():
        return None
    dense = [m for m in json.loads(path.read_text()) if m.get("type", "").endswith(".Dense")]
    if not dense:
        return None
    from sentence_transformers.sentence_transformer.modules import Dense
    module = Dense.load(str(Path(folder) / dense[0]["path"]))
    if not isinstance(module.activation_function, nn.Identity):
        raise ConfigError(f"{folder}/{dense[0]['path']}: Dense with activation {type(module.activation_function).__name__}; "
                          "only a linear (identity) projection is supported")
    return module.linear
