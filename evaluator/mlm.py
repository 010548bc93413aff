"""Masked-LM evaluator: accuracy and loss over all masked positions of the split.

MLM methods return, per example, [summed CE, correct predictions, masked positions] as "logits"
(model/parts/masked_lm.py), so ranks gather small fixed-size rows instead of (L, vocab) logits, and the
metrics are token-weighted over the whole split, not a mean of per-batch means."""
import math

import numpy as np

from evaluator.metrics import EMPTY_MSG


class MLMEvaluator:
    """(N, 3) per-example statistics -> {"mlm_accuracy", "mlm_loss", "mlm_perplexity", "masked_tokens"}."""

    main_metric = "mlm_accuracy"
    # names the lm evaluator (evaluator/lm.py) changes: metric prefix, count key, what it reads and from which models
    prefix, count_name, statistics, models = "mlm", "masked_tokens", "masked-LM", "the mlm_head or distilbert model"

    def __init__(self, config=None):
        self.config = config

    def details(self, logits, labels, names=None):
        """No per-class table: not a classification over label names."""
        return None

    def __call__(self, logits, labels):
        stats = np.asarray(logits, dtype=np.float64)
        if stats.ndim != 2 or stats.shape[1] != 3:
            raise ValueError(f"the {self.prefix} evaluator reads (N, 3) {self.statistics} statistics, got shape "
                             f"{stats.shape}; use it with {self.models}")
        ce, correct, count = stats.sum(0)
        if count == 0:
            raise ValueError(EMPTY_MSG)
        loss = ce / count
        p = self.prefix
        return {f"{p}_accuracy": float(correct / count), f"{p}_loss": float(loss),
                f"{p}_perplexity": float(math.exp(min(loss, 50.0))), self.count_name: int(count)}
