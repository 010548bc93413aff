"""Matthews correlation evaluator (CoLA: robust to its label imbalance)."""

from evaluator._common import class_preds
from evaluator.metrics import accuracy, matthews_corrcoef


class MCCEvaluator:
    """(N, C) logits -> {"mcc", "accuracy"}."""

    main_metric = "mcc"

    def __init__(self, config=None):
        self.config = config

    def __call__(self, logits, labels):
        preds, labels = class_preds(logits, labels)
        return {"mcc": matthews_corrcoef(preds, labels), "accuracy": accuracy(preds, labels)}
