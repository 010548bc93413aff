"""Pearson/Spearman evaluator for regression tasks (STS-B)."""

import numpy as np

from evaluator.metrics import EMPTY_MSG, pearson, spearman


class CorrelationEvaluator:
    """(N,) or (N, 1) scores -> {"pearson", "spearman", "corr"}."""

    main_metric = "corr"

    def __init__(self, config=None):
        self.config = config

    def details(self, logits, labels, names=None):
        """No per-class table: not a classification over label names."""
        return None

    def __call__(self, logits, labels):
        scores = np.asarray(logits, dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if scores.ndim != 1:
            raise ValueError(f"expected (N,) or (N, 1) scores, got shape {scores.shape}")
        labels = np.asarray(labels, dtype=np.float64).reshape(-1)
        if scores.size == 0 or labels.size == 0:
            raise ValueError(EMPTY_MSG)
        p, s = pearson(scores, labels), spearman(scores, labels)
        return {"pearson": p, "spearman": s, "corr": (p + s) / 2.0}
