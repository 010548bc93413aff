"""Where the student's and the teacher's tokenizers come from, resolved from the config (formatters and models both ask)."""
from pretrained.loading import TOKENIZER_FILES, resolve_model_path


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


def same_vocab(a, b):
    """Two tokenizers that map every piece to the same id (teacher and student may then share one input)."""
    return a is b or (type(a) is type(b) and a.get_vocab() == b.get_vocab())
