"""Picks the official GLUE metric from [data] task, so configs need not name it."""

from evaluator.acc_f1 import AccF1Evaluator
from evaluator.accuracy import AccuracyEvaluator
from evaluator.correlation import CorrelationEvaluator
from evaluator.mcc import MCCEvaluator

# keys are normalised task names: lower case, no "-" / "_"
TASK_EVALUATORS = {
    "cola": MCCEvaluator,
    "sst2": AccuracyEvaluator,
    "rte": AccuracyEvaluator,
    "qnli": AccuracyEvaluator,
    "mnli": AccuracyEvaluator,
    "wnli": AccuracyEvaluator,
    "mrpc": AccF1Evaluator,
    "qqp": AccF1Evaluator,
    "stsb": CorrelationEvaluator,
}


def _norm(task):
    """'SST-2', 'sst_2', 'sst2' all name the same task."""
    return str(task or "").strip().lower().replace("-", "").replace("_", "")


class GlueEvaluator:
    """Delegates to the task's evaluator; unknown tasks fall back to accuracy."""

    def __init__(self, config):
        self.task = config.get("data", "task")
        self.inner = TASK_EVALUATORS.get(_norm(self.task), AccuracyEvaluator)(config)
        self.main_metric = self.inner.main_metric

    def __call__(self, logits, labels):
        return self.inner(logits, labels)

    def details(self, logits, labels, names=None):
        return self.inner.details(logits, labels, names)
