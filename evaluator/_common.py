"""Shared input handling for evaluators: empty check and logits -> class ids."""

import numpy as np

from evaluator.metrics import EMPTY_MSG


def class_preds(logits, labels):
    """Argmax over (N, C) logits; rejects empty input before argmax fails obscurely."""
    logits, labels = np.asarray(logits), np.asarray(labels).reshape(-1)
    if logits.shape[0] == 0 or labels.size == 0:
        raise ValueError(EMPTY_MSG)
    if logits.ndim != 2:
        raise ValueError(f"expected (N, C) logits, got shape {logits.shape}")
    return logits.argmax(axis=1), labels
