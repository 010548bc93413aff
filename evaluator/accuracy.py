"""Accuracy evaluator (SST-2, RTE, QNLI, MNLI, WNLI); macro- and weighted-F1 beside it for more than two classes."""

import numpy as np

from evaluator._common import class_details, class_preds, multiclass_f1
from evaluator.metrics import accuracy


class AccuracyEvaluator:
    """(N, C) logits -> {"accuracy"} (+ "f1_macro", "f1_weighted" when C > 2)."""

    main_metric = "accuracy"

    def __init__(self, config=None):
        self.config = config

    def __call__(self, logits, labels):
        preds, labels = class_preds(logits, labels)
        return {"accuracy": accuracy(preds, labels), **multiclass_f1(preds, labels, np.shape(logits)[1])}

    def details(self, logits, labels, names=None):
        return class_details(logits, labels, names)
