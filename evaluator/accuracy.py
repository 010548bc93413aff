"""Accuracy evaluator (SST-2, RTE, QNLI, MNLI, WNLI)."""

from evaluator._common import class_preds
from evaluator.metrics import accuracy


class AccuracyEvaluator:
    """(N, C) logits -> {"accuracy"}."""

    main_metric = "accuracy"

    def __init__(self, config=None):
        self.config = config

    def __call__(self, logits, labels):
        preds, labels = class_preds(logits, labels)
        return {"accuracy": accuracy(preds, labels)}
