"""One place that decides which source layers a smaller model keeps, and validates the choice."""
from utils.errors import ConfigError


def select_layers(num_source, num_keep, how="uniform", explicit=None, what="[student]"):
    """0-based source layer ids to keep.

    uniform: every n/k-th layer ending at the top (TinyBERT / PKD-skip map: 6->2 gives [2, 5]);
    every_other: one layer out of two from the bottom, 0, 2, 4, ... (Sanh et al. 2019's DistilBERT initialisation;
    HF's examples/research_projects/distillation/scripts/extract_distilbert.py keeps 0, 2, 4, 7, 9, 11 of BERT-base,
    which is layer_list = 0, 2, 4, 7, 9, 11);
    first: the bottom k (PKD-Last's initialisation); last: the top k. An explicit list wins.
    """
    if explicit:
        bad = [i for i in explicit if not 0 <= i < num_source]
        if bad:
            raise ConfigError(f"{what} layer_list: layer {bad[0]} out of range; the source has layers 0..{num_source - 1}")
        return list(explicit)
    if num_keep <= 0 or num_keep == num_source:
        return list(range(num_source))
    if num_keep > num_source:
        raise ConfigError(f"{what} num_layers = {num_keep}: the source has only {num_source} layers")
    if how == "first":
        return list(range(num_keep))
    if how == "last":
        return list(range(num_source - num_keep, num_source))
    if how == "uniform":
        return [(i + 1) * num_source // num_keep - 1 for i in range(num_keep)]
    if how == "every_other":
        if 2 * num_keep - 1 > num_source:
            raise ConfigError(f"{what} layer_select = every_other: {num_keep} layers 0, 2, 4, ... need a source of at least "
                              f"{2 * num_keep - 1} layers, it has {num_source}")
        return list(range(0, 2 * num_keep, 2))
    raise ConfigError(f"{what} layer_select = {how!r}: expected uniform, every_other, first or last")


def pkd_teacher_layers(num_teacher, num_student, strategy):
    """BERT-PKD: the teacher layers the student's first k-1 layers imitate (the last layer is left to
    the prediction loss). skip: every n/k-th (12->6: 2,4,6,8,10 1-based); last: the k-1 below the top
    (12->6: 7..11). Returned 0-based, one per student layer 0..k-2."""
    if num_student > num_teacher:
        raise ConfigError(f"[student] num_layers = {num_student}: the teacher has only {num_teacher} layers")
    if strategy == "skip":
        return [(i + 1) * num_teacher // num_student - 1 for i in range(num_student - 1)]
    if strategy == "last":
        return list(range(num_teacher - num_student, num_teacher - 1))
    raise ConfigError(f"[pkd] strategy = {strategy!r}: expected skip or last")


def tinybert_layer_map(num_teacher, num_student, explicit=None):
    """TinyBERT's n = g(m): the 0-based teacher layer each student layer imitates.

    Uniform (the paper's choice): student layer m (1-based) <- teacher layer m*N/M, so 6->2 gives
    [2, 5] and 12->4 gives [2, 5, 8, 11] (0-based). The embedding output maps to the embedding
    output (g(0) = 0). `explicit` ([tinybert] teacher_layers) gives one teacher layer per student layer."""
    layers = f"the teacher has layers 0..{num_teacher - 1}"
    if explicit:
        if len(explicit) != num_student:
            raise ConfigError(f"[tinybert] teacher_layers = {','.join(map(str, explicit))}: {len(explicit)} entries for a "
                              f"{num_student}-layer student; give one teacher layer per student layer ({layers})")
        bad = [i for i in explicit if not 0 <= i < num_teacher]
        if bad:
            raise ConfigError(f"[tinybert] teacher_layers: layer {bad[0]} out of range; {layers}")
        return list(explicit)
    if num_student > num_teacher:
        raise ConfigError(f"[student] num_layers = {num_student}: {layers}, a uniform map needs a student no deeper; "
                          "set [tinybert] teacher_layers explicitly")
    return [(m + 1) * num_teacher // num_student - 1 for m in range(num_student)]
