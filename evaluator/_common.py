"""Shared input handling for evaluators: empty check and logits -> class ids."""

import numpy as np

from evaluator.metrics import EMPTY_MSG, classification_details, f1_averaged


def class_preds(logits, labels):
    """Argmax over (N, C) logits; rejects empty input before argmax fails obscurely."""
    logits, labels = np.asarray(logits), np.asarray(labels).reshape(-1)
    if logits.shape[0] == 0 or labels.size == 0:
        raise ValueError(EMPTY_MSG)
    if logits.ndim != 2:
        raise ValueError(f"expected (N, C) logits, got shape {logits.shape}")
    return logits.argmax(axis=1), labels


def multiclass_f1(preds, labels, num_classes):
    """{"f1_macro", "f1_weighted"} beside accuracy when there are more than two classes (one class's F1 would hide
    the others), else {}."""
    if num_classes <= 2:
        return {}
    return {"f1_macro": f1_averaged(preds, labels, "macro"), "f1_weighted": f1_averaged(preds, labels, "weighted")}


def class_details(logits, labels, names=None):
    """Per-class table and confusion matrix of (N, C) logits; label names default to the label ids."""
    preds, labels = class_preds(logits, labels)
    names = list(names) if names else [str(i) for i in range(np.asarray(logits).shape[1])]
    return classification_details(preds, labels, names)
