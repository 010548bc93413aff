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

    def __init__(self, config=None):
        self.config = config

    def details(self, logits, labels, names=None):
        """No per-class table: not a classification over label names."""
        return None

    def __call__(self, logits, labels):
        stats = np.asarray(logits, dtype=np.float64)
        if stats.ndim != 2 or stats.shape[1] != 3:
            raise ValueError(f"the mlm evaluator reads (N, 3) masked-LM statistics, got shape {stats.shape}; "
                             "use it with the mlm_head or distilbert model")
        ce, correct, count = stats.sum(0)
        if count == 0:
            raise ValueError(EMPTY_MSG)
        loss = ce / count
        return {"mlm_accuracy": float(correct / count), "mlm_loss": float(loss),
                "mlm_perplexity": float(math.exp(min(loss, 50.0))), "masked_tokens": int(count)}
