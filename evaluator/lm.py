"""Language-model evaluator (elmo_lm): the masked-LM evaluator's token-weighted statistics, over every prediction a
bidirectional LM makes (each real word's next word forward and previous word backward, sentence boundaries included):
lm_accuracy (the main metric, higher is better), lm_loss (mean NLL per prediction, both directions together),
lm_perplexity = exp(lm_loss) (select it with [train] metric = lm_perplexity and metric_mode = min), predicted_tokens."""
from evaluator.mlm import MLMEvaluator


class LMEvaluator(MLMEvaluator):
    main_metric = "lm_accuracy"
    prefix, count_name, statistics, models = "lm", "predicted_tokens", "language-model", "the elmo_lm model"
