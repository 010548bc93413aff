"""Building the student from [student]: layers of the pretrained model, of the teacher, or random init."""
import copy
import re

from pretrained.loading import load_classifier, load_encoder, resolve_model_path
from model.parts.layer_map import select_layers
from utils.errors import ConfigError


def build_student(config, num_labels, teacher=None, load=None):
    """The student classifier described by [student] and [model] (one code path for every method).
    num_labels=None builds an encoder without a task head (general distillation on unlabeled text);
    load(path, key) picks another model class for [model] pretrained (e.g. load_masked_lm)."""
    how = config.get("student", "init_from")
    if how == "teacher":
        if teacher is None:
            raise ConfigError(f"[student] init_from = teacher: model '{config.get('model', 'model_name')}' has no teacher")
        source = teacher
    else:
        path = resolve_model_path(config.get("model", "pretrained"))
        kwargs = {"ignore_mismatched_sizes": True}  # a checkpoint's head for another label set is re-initialised
        if config.get("model", "classifier_dropout") >= 0:
            kwargs["classifier_dropout"] = config.get("model", "classifier_dropout")
        source = (load(path, "[model] pretrained") if load is not None
                  else load_encoder(path, "[model] pretrained") if num_labels is None
                  else load_classifier(path, "[model] pretrained", num_labels=num_labels, **kwargs))
    n = num_layers_of(source)
    if how == "config":
        return random_like(source, config.get("student", "num_layers") or n, config.get("student", "hidden_size"),
                           config.get("student", "num_attention_heads"), config.get("student", "intermediate_size"))
    keep = select_layers(n, config.get("student", "num_layers"), config.get("student", "layer_select"),
                         config.get("student", "layer_list"))
    if keep == list(range(n)) and source is not teacher:
        return source
    return cut_layers(source, keep)


_LAYER_KEY = re.compile(r"^(.*\.layers?\.)(\d+)(\..*)$")


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
