"""elmo_lm: the general stage of the ELMo path (Peters et al. 2018) — pretrain ELMo's bidirectional LM on unlabeled text.

A word-level biLM (model/parts/bilm.py: separate forward and backward 2-layer LSTM LMs, tied embeddings and softmax)
learns loss = forward next-word NLL + backward previous-word NLL (model/parts/loss.py bilm_nll_losses), from the
word_lm formatter's batches over the run's word vocabulary (the most frequent words of its training text). No
teacher. Evaluation reports the `lm` evaluator's next/previous-word accuracy and perplexity over both directions. The
export (the run's student/: config.json, model.safetensors, vocab.json) is what the task stage elmo_bilstm reads
through `[model] pretrained` (and `[word_vocab] source = pretrained` for the words). Departures from ELMo's scale:
model/parts/bilm.py."""
from model.base import DistillModel
from model.parts.bilm import build_bilm
from model.parts.loss import bilm_nll_losses
from model.parts.masked_lm import masked_lm_stats
from utils.errors import ConfigError


class ElmoLM(DistillModel):
    paper = "Peters et al. 2018, Deep contextualized word representations"
    reads_word_ids = True
    teacher_runs_in_train_step = False  # no teacher

    def __init__(self, config, word_vocab=None):
        super().__init__()
        name = config.get("model", "model_name")
        if config.get("distill", "teacher"):
            raise ConfigError(f"{config.source('distill', 'teacher')}: [distill] teacher: model '{name}' pretrains a "
                              "language model and uses no teacher; leave it empty")
        if config.get("data", "formatter_type") != "word_lm" or word_vocab is None:
            raise ConfigError(f"{config.source('data', 'formatter_type')}: [data] formatter_type = "
                              f"{config.get('data', 'formatter_type')}: model '{name}' reads language-model batches; set word_lm")
        if word_vocab.pairs:
            raise ConfigError(f"{config.source('data', 'train_file')}: [data] train_file = {config.get('data', 'train_file')}: "
                              f"sentence pairs; model '{name}' reads one text per row")
        self.student = build_bilm(config, word_vocab)

    def forward(self, batch):
        predicted = self.student(batch["word_ids"], batch["word_lengths"])
        forward_nll, backward_nll = bilm_nll_losses(predicted.forward_logits, predicted.backward_logits,
                                                    predicted.forward_targets, predicted.backward_targets)
        out = {"loss": forward_nll + backward_nll, "loss_forward": forward_nll, "loss_backward": backward_nll}
        if not self.training:  # per-example [summed NLL, correct, predictions] over both directions, for the lm evaluator
            size = batch["word_ids"].shape[0]
            stats = (masked_lm_stats(predicted.forward_logits, predicted.forward_targets, predicted.rows, size)
                     + masked_lm_stats(predicted.backward_logits, predicted.backward_targets, predicted.rows, size))
            out.update(logits=stats, eval_labels=stats[:, 2].long())
        return out
