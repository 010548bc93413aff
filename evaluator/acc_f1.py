"""Accuracy + F1 evaluator (MRPC, QQP: GLUE reports both, we select on their mean)."""

from evaluator._common import class_preds
from evaluator.metrics import accuracy, f1_binary


class AccF1Evaluator:
    """(N, 2) logits -> {"accuracy", "f1", "acc_and_f1"}; F1 of class 1."""

    main_metric = "acc_and_f1"

    def __init__(self, config=None):
        self.config = config

    def __call__(self, logits, labels):
        preds, labels = class_preds(logits, labels)
        acc, f1 = accuracy(preds, labels), f1_binary(preds, labels, positive=1)
        return {"accuracy": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2.0}
