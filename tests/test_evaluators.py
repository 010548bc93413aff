"""Evaluator metrics: hand-computed values, sklearn/scipy cross-checks, edge cases."""

import math

import numpy as np
import pytest

from evaluator.acc_f1 import AccF1Evaluator
from evaluator.accuracy import AccuracyEvaluator
from evaluator.correlation import CorrelationEvaluator
from evaluator.glue import GlueEvaluator
from evaluator.mcc import MCCEvaluator
from evaluator.metrics import _rank, accuracy, f1_binary, matthews_corrcoef, pearson, spearman


class FakeConfig:
    def __init__(self, task=None):
        self.task = task

    def get(self, section, key):
        assert (section, key) == ("data", "task"), (section, key)
        return self.task


# preds/labels with tp=2, fp=1, fn=1, tn=2
P = [1, 1, 1, 0, 0, 0]
Y = [1, 1, 0, 1, 0, 0]


def onehot(preds, c=2):
    """Logits whose argmax is `preds`."""
    out = np.zeros((len(preds), c))
    out[np.arange(len(preds)), preds] = 1.0
    return out


# ---- hand-computed values -------------------------------------------------

def test_accuracy_by_hand():
    assert accuracy(P, Y) == pytest.approx(4 / 6)  # tp + tn = 4 of 6
    assert isinstance(accuracy(P, Y), float)


def test_f1_by_hand():
    # F1 = 2tp / (2tp + fp + fn) = 4 / (4 + 1 + 1)
    assert f1_binary(P, Y) == pytest.approx(4 / 6)
    # class 0 as positive: tp=2 (idx 4,5), fp=1 (idx 3), fn=1 (idx 2)
    assert f1_binary(P, Y, positive=0) == pytest.approx(4 / 6)
    # tp=1, fp=2, fn=0 -> 2 / (2 + 2 + 0)
    assert f1_binary([1, 1, 1], [1, 0, 0]) == pytest.approx(0.5)
    assert f1_binary([0, 0], [0, 0]) == 0.0  # no positives anywhere


def test_mcc_binary_by_hand():
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (4 - 1) / sqrt(3*3*3*3) = 3/9
    assert matthews_corrcoef(P, Y) == pytest.approx(1 / 3)
    assert matthews_corrcoef([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_mcc_multiclass_by_hand():
    # 3 correct of s=6; true counts t=[2,2,2], pred counts p=[2,2,2]
    # num = c*s - t.p = 3*6 - 12 = 6; den = sqrt(36 - 12) * sqrt(36 - 12) = 24
    assert matthews_corrcoef([0, 1, 2, 0, 1, 2], [0, 1, 2, 1, 2, 0]) == pytest.approx(0.25)


def test_pearson_by_hand():
    # dx = [-1,0,1], dy = [-5/3,-2/3,7/3]; sum dxdy = 4, sxx = 2, syy = 78/9
    assert pearson([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / math.sqrt(2 * 78 / 9))
    assert pearson([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)


def test_spearman_ties_by_hand():
    assert _rank(np.array([10, 20, 20, 30])).tolist() == [1, 2.5, 2.5, 4]
    # ranks x=[1,2.5,2.5,4], y=[1,3,2,4]; dx=[-1.5,0,0,1.5], dy=[-1.5,.5,-.5,1.5]
    # sum dxdy = 4.5, sxx = 4.5, syy = 5 -> 4.5 / sqrt(22.5)
    assert spearman([10, 20, 20, 30], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # monotone but nonlinear -> exactly 1
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)


# ---- cross-check against sklearn / scipy ---------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_against_sklearn_scipy(seed):
    from scipy.stats import pearsonr, spearmanr
    from sklearn import metrics as skm

    rng = np.random.default_rng(seed)
    y2, p2 = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    y3, p3 = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert accuracy(p3, y3) == pytest.approx(skm.accuracy_score(y3, p3))
    assert f1_binary(p2, y2) == pytest.approx(skm.f1_score(y2, p2))
    assert matthews_corrcoef(p2, y2) == pytest.approx(skm.matthews_corrcoef(y2, p2))
    assert matthews_corrcoef(p3, y3) == pytest.approx(skm.matthews_corrcoef(y3, p3))

    x, z = rng.normal(size=100), rng.normal(size=100)
    z = z + x  # correlated, so a sign error would show
    assert pearson(x, z) == pytest.approx(pearsonr(x, z)[0])
    xt, zt = rng.integers(0, 6, 100), rng.integers(0, 6, 100) + rng.integers(0, 3, 100)  # many ties
    assert spearman(xt, zt) == pytest.approx(spearmanr(xt, zt)[0])


# ---- edge cases -----------------------------------------------------------

def test_constant_inputs_give_zero_not_nan():
    assert matthews_corrcoef([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0
    assert matthews_corrcoef([2, 2, 2], [0, 1, 2]) == 0.0
    assert spearman([3, 3, 3], [1, 2, 3]) == 0.0
    assert pearson([1, 2, 3], [5, 5, 5]) == 0.0


@pytest.mark.parametrize("fn", [accuracy, f1_binary, matthews_corrcoef, pearson, spearman])
def test_empty_metric_raises(fn):
    with pytest.raises(ValueError, match="no examples to evaluate"):
        fn([], [])


@pytest.mark.parametrize("cls", [AccuracyEvaluator, AccF1Evaluator, MCCEvaluator])
def test_empty_classifier_evaluator_raises(cls):
    with pytest.raises(ValueError, match="no examples to evaluate"):
        cls(FakeConfig())(np.zeros((0, 2)), np.zeros(0, dtype=int))


def test_empty_correlation_raises():
    with pytest.raises(ValueError, match="no examples to evaluate"):
        CorrelationEvaluator(FakeConfig())(np.zeros((0, 1)), np.zeros(0))


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="length mismatch"):
        accuracy([1, 0], [1])


# ---- evaluator classes ------------------------------------------------------

def test_classifier_evaluators():
    logits = onehot(P)
    assert AccuracyEvaluator(FakeConfig())(logits, np.array(Y)) == pytest.approx({"accuracy": 4 / 6})
    out = AccF1Evaluator(FakeConfig())(logits, np.array(Y))
    assert out == pytest.approx({"accuracy": 4 / 6, "f1": 4 / 6, "acc_and_f1": 4 / 6})
    out = MCCEvaluator(FakeConfig())(logits, np.array(Y))
    assert out == pytest.approx({"mcc": 1 / 3, "accuracy": 4 / 6})
    assert all(type(v) is float for v in out.values())


def test_acc_f1_mean_differs_from_parts():
    # preds all 1 vs labels [1,0,0,0]: acc 1/4, f1 = 2/(2+3) = 0.4
    out = AccF1Evaluator(FakeConfig())(onehot([1, 1, 1, 1]), np.array([1, 0, 0, 0]))
    assert out["acc_and_f1"] == pytest.approx((0.25 + 0.4) / 2)


@pytest.mark.parametrize("shape", [(3,), (3, 1)])
def test_correlation_evaluator(shape):
    scores = np.array([1.0, 2.0, 3.0]).reshape(shape)
    out = CorrelationEvaluator(FakeConfig())(scores, np.array([1.0, 2.0, 5.0]))
    r = 4 / math.sqrt(2 * 78 / 9)
    assert out == pytest.approx({"pearson": r, "spearman": 1.0, "corr": (r + 1.0) / 2})


def test_main_metrics():
    assert AccuracyEvaluator.main_metric == "accuracy"
    assert AccF1Evaluator.main_metric == "acc_and_f1"
    assert MCCEvaluator.main_metric == "mcc"
    assert CorrelationEvaluator.main_metric == "corr"


@pytest.mark.parametrize("task, cls, main", [
    ("CoLA", MCCEvaluator, "mcc"),
    ("SST-2", AccuracyEvaluator, "accuracy"),
    ("RTE", AccuracyEvaluator, "accuracy"),
    ("QNLI", AccuracyEvaluator, "accuracy"),
    ("MNLI", AccuracyEvaluator, "accuracy"),
    ("WNLI", AccuracyEvaluator, "accuracy"),
    ("MRPC", AccF1Evaluator, "acc_and_f1"),
    ("QQP", AccF1Evaluator, "acc_and_f1"),
    ("STS-B", CorrelationEvaluator, "corr"),
    ("sts_b", CorrelationEvaluator, "corr"),
    ("sst2", AccuracyEvaluator, "accuracy"),
    ("my-task", AccuracyEvaluator, "accuracy"),
])
def test_glue_picks_metric(task, cls, main):
    ev = GlueEvaluator(FakeConfig(task))
    assert type(ev.inner) is cls
    assert ev.main_metric == main


def test_glue_delegates_results():
    out = GlueEvaluator(FakeConfig("CoLA"))(onehot(P), np.array(Y))
    assert set(out) == {"mcc", "accuracy"}
    assert out["mcc"] == pytest.approx(1 / 3)
    out = GlueEvaluator(FakeConfig("STS-B"))(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 5.0]))
    assert set(out) == {"pearson", "spearman", "corr"}


# ---- more than two classes ------------------------------------------------

def three_class_toy():
    """12 examples, 3 classes, predictions chosen so per-class F1 differ (class 2 right once in five)."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    preds = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 2, 1, 0])
    return np.eye(3)[preds] * 5.0, labels, preds


@pytest.mark.parametrize("cls", [AccuracyEvaluator, AccF1Evaluator, MCCEvaluator])
def test_three_classes_report_macro_and_weighted_f1_as_sklearn_does(cls):
    from sklearn import metrics as skm
    logits, labels, preds = three_class_toy()
    out = cls()(logits, labels)
    assert out["f1_macro"] == pytest.approx(skm.f1_score(labels, preds, average="macro"))
    assert out["f1_weighted"] == pytest.approx(skm.f1_score(labels, preds, average="weighted"))
    assert out["accuracy"] == pytest.approx(6 / 12)
    if cls is AccF1Evaluator:  # no single-class F1 standing in for three classes
        assert "f1" not in out and out["acc_and_f1"] == pytest.approx((0.5 + out["f1_macro"]) / 2)


def test_two_classes_keep_the_f1_of_class_1():
    out = AccF1Evaluator()(np.eye(2)[[1, 0, 1, 1]], np.array([1, 0, 0, 1]))
    assert out["f1"] == pytest.approx(0.8) and "f1_macro" not in out


def test_per_class_table_and_confusion_matrix_match_sklearn():
    from sklearn import metrics as skm
    logits, labels, preds = three_class_toy()
    details = GlueEvaluator(FakeConfig("MNLI")).details(logits, labels, ["entailment", "neutral", "contradiction"])
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, preds, zero_division=0)
    assert [row["label"] for row in details["per_class"]] == ["entailment", "neutral", "contradiction"]
    for i, row in enumerate(details["per_class"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i]), abs=1e-6)
    # rows: true class, columns: predicted class, counted by hand from three_class_toy
    assert details["confusion_matrix"]["rows"] == [[3, 1, 0], [1, 2, 0], [2, 2, 1]]
    assert CorrelationEvaluator().details(np.zeros((3, 1)), np.zeros(3)) is None
