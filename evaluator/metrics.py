"""GLUE metrics in plain numpy, so evaluation needs no sklearn/scipy at run time.

All functions return Python floats as fractions (not percentages) and raise
ValueError on empty input, so a silently empty dev set cannot look like a score.
"""

import numpy as np

EMPTY_MSG = "no examples to evaluate"


def _pair(a, b):
    """Flatten both inputs and check they line up; empty input is an error."""
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {a.size} predictions vs {b.size} labels")
    if a.size == 0:
        raise ValueError(EMPTY_MSG)
    return a, b


def accuracy(preds, labels):
    """Fraction of exact matches."""
    p, y = _pair(preds, labels)
    return float(np.mean(p == y))


def f1_binary(preds, labels, positive=1):
    """F1 of the `positive` class; 0.0 when there are no true positives."""
    p, y = _pair(preds, labels)
    tp = np.sum((p == positive) & (y == positive))
    fp = np.sum((p == positive) & (y != positive))
    fn = np.sum((p != positive) & (y == positive))
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


def matthews_corrcoef(preds, labels):
    """Multi-class MCC (Gorodkin's R_K); 0.0 when undefined (e.g. constant predictions)."""
    p, y = _pair(preds, labels)
    classes, inv = np.unique(np.concatenate([y, p]), return_inverse=True)
    k, n = classes.size, y.size
    cm = np.zeros((k, k), dtype=np.float64)  # rows: true, cols: predicted
    np.add.at(cm, (inv[:n], inv[n:]), 1)
    t, pk = cm.sum(axis=1), cm.sum(axis=0)
    c, s = np.trace(cm), float(n)
    num = c * s - t @ pk
    denom = np.sqrt(s * s - pk @ pk) * np.sqrt(s * s - t @ t)
    return float(num / denom) if denom else 0.0


def pearson(x, y):
    """Pearson r; 0.0 for a constant input instead of nan."""
    a, b = _pair(x, y)
    a = a.astype(np.float64) - np.mean(a, dtype=np.float64)
    b = b.astype(np.float64) - np.mean(b, dtype=np.float64)
    denom = np.sqrt(a @ a) * np.sqrt(b @ b)
    if denom == 0:
        return 0.0
    return float(np.clip(a @ b / denom, -1.0, 1.0))


def _rank(v):
    """1-based ranks, ties get the average of the ranks they span."""
    order = np.argsort(v, kind="mergesort")
    sv = v[order]
    # start index of each run of equal values
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    ends = np.r_[starts[1:], sv.size]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1..ends
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(x, y):
    """Spearman rho = Pearson on average ranks; 0.0 for a constant input."""
    a, b = _pair(x, y)
    return pearson(_rank(a), _rank(b))
