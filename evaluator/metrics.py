"""Classification and correlation metrics, computed by scikit-learn and scipy (the references everyone checks
against), with the project's two guarantees on top: empty input is an error, so a silently empty dev set cannot look
like a score, and a metric that is undefined (constant predictions or inputs) is 0.0, not nan.

All functions return Python floats as fractions (not percentages). scikit-learn and scipy are imported where a
metric is computed, not with this module: importing scikit-learn takes about 2 s, which every train.py start would pay
before its first evaluation (and every bad-input exit never needs)."""
import warnings

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
    from sklearn import metrics as skm
    p, y = _pair(preds, labels)
    return float(skm.accuracy_score(y, p))


def f1_binary(preds, labels, positive=1):
    """F1 of the `positive` class; 0.0 when there are no true positives."""
    from sklearn import metrics as skm
    p, y = _pair(preds, labels)
    return float(skm.f1_score(y, p, labels=[positive], average=None, zero_division=0)[0])


def f1_averaged(preds, labels, average):
    """Macro- or weighted-F1 over the classes that occur in labels or predictions."""
    from sklearn import metrics as skm
    p, y = _pair(preds, labels)
    return float(skm.f1_score(y, p, average=average, zero_division=0))


def matthews_corrcoef(preds, labels):
    """Multi-class MCC (Gorodkin's R_K); 0.0 when undefined (e.g. constant predictions)."""
    from sklearn import metrics as skm
    p, y = _pair(preds, labels)
    return float(skm.matthews_corrcoef(y, p))


def _correlation(fn, x, y):
    a, b = _pair(x, y)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fn(a, b).statistic
    return 0.0 if np.isnan(value) else float(np.clip(value, -1.0, 1.0))


def pearson(x, y):
    """Pearson r; 0.0 for a constant input instead of nan."""
    from scipy import stats
    return _correlation(stats.pearsonr, x, y)


def _rank(v):
    """1-based ranks, ties get the average of the ranks they span (what Spearman correlates)."""
    from scipy import stats
    return stats.rankdata(v, method="average")


def spearman(x, y):
    """Spearman rho = Pearson on average ranks; 0.0 for a constant input."""
    from scipy import stats
    return _correlation(stats.spearmanr, x, y)


def classification_details(preds, labels, names):
    """Per-class precision / recall / F1 / support and the confusion matrix (rows: true, columns: predicted) over
    the classes `names` (index = label id), for results.json."""
    from sklearn import metrics as skm
    p, y = _pair(preds, labels)
    ids = list(range(len(names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, p, labels=ids, zero_division=0)
    per_class = [{"label": name, "precision": round(float(precision[i]), 6), "recall": round(float(recall[i]), 6),
                  "f1": round(float(f1[i]), 6), "support": int(support[i])} for i, name in enumerate(names)]
    matrix = skm.confusion_matrix(y, p, labels=ids)
    return {"per_class": per_class, "confusion_matrix": {"labels": list(names), "rows": matrix.tolist()}}
