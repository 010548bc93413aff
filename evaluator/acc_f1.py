"""Accuracy + F1 evaluator (MRPC, QQP: GLUE reports both, we select on their mean). With more than two classes the
F1 of one class would hide the others, so F1 is macro-F1 there (weighted-F1 beside it)."""

import numpy as np

from evaluator._common import class_details, class_preds, multiclass_f1
from evaluator.metrics import accuracy, f1_binary


class AccF1Evaluator:
    """(N, 2) logits -> {"accuracy", "f1", "acc_and_f1"}, F1 of class 1; (N, C > 2) -> {"accuracy", "f1_macro",
    "f1_weighted", "acc_and_f1"}, the mean of accuracy and macro-F1."""

    main_metric = "acc_and_f1"

    def __init__(self, config=None):
        self.config = config

    def __call__(self, logits, labels):
        preds, labels = class_preds(logits, labels)
        acc, multi = accuracy(preds, labels), multiclass_f1(preds, labels, np.shape(logits)[1])
        if multi:
            return {"accuracy": acc, **multi, "acc_and_f1": (acc + multi["f1_macro"]) / 2.0}
        f1 = f1_binary(preds, labels, positive=1)
        return {"accuracy": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2.0}

    def details(self, logits, labels, names=None):
        return class_details(logits, labels, names)
