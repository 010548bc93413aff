"""Building the student from [student]: layers of the pretrained model, of the teacher, or random init."""
from model.hf_loader import (TOKENIZER_FILES, cut_layers, load_classifier, load_encoder, num_layers_of, random_like,
                             resolve_model_path)
from model.layer_map import select_layers
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


def student_tokenizer_source(config):
    """Where the student's tokenizer comes from: [model] tokenizer, else the student's weights."""
    if config.get("model", "tokenizer"):
        return resolve_model_path(config.get("model", "tokenizer"), "[model] tokenizer", TOKENIZER_FILES)
    if config.get("student", "init_from") == "teacher" and config.get("distill", "teacher"):
        return resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
    return resolve_model_path(config.get("model", "pretrained"))


def teacher_tokenizer_source(config):
    teacher = config.get("distill", "teacher")
    return resolve_model_path(teacher, "[distill] teacher") if teacher else None
