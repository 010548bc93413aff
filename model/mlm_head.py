"""mlm_head: give an encoder without an MLM head (all-MiniLM-L6-v2 is a sentence encoder) a trained one,
so it can teach DistilBERT-style distillation.

The encoder is loaded as ForMaskedLM (the head's transform and output bias are new; the decoder weight
is tied to the word embeddings), everything but the head is frozen and kept in eval mode (the head
learns the features the teacher will produce, without dropout), and the head is trained with MLM
cross-entropy at the masked positions. The export is a ForMaskedLM (AutoModelForMaskedLM loads it with
the head) that also carries the source's pooler (model/parts/masked_lm.py: save_with_pooler)."""
import torch

from model.base import DistillModel, student_inputs
from pretrained.loading import load_masked_lm, resolve_model_path
from model.parts.loss import hard_ce_loss
from model.parts.masked_lm import IGNORE, encode, head_logits, head_parameters, mlm_eval_output, save_with_pooler, source_pooler
from utils.errors import ConfigError


class MLMHead(DistillModel):
    def __init__(self, config):
        super().__init__()
        if config.get("distill", "teacher"):
            raise ConfigError("[distill] teacher: mlm_head trains a head on its own encoder and uses no teacher; leave it empty")
        path = resolve_model_path(config.get("model", "pretrained"))
        self.student = load_masked_lm(path, "[model] pretrained")
        trainable = {id(p) for p in head_parameters(self.student)}
        for p in self.student.parameters():
            p.requires_grad_(id(p) in trainable)
        self._frozen["pooler"] = source_pooler(path, "[model] pretrained")

    def train(self, mode=True):
        super().train(mode)
        self.student.base_model.eval()  # frozen encoder: no dropout
        return self

    def forward(self, batch):
        if not self.training:
            return mlm_eval_output(self.student, batch)
        labels = batch["labels"]
        masked = labels != IGNORE
        with torch.no_grad():  # nothing below the head is trained
            hidden = encode(self.student, student_inputs(batch))
        logits = head_logits(self.student, hidden, masked)
        loss = hard_ce_loss(logits, labels[masked])
        return {"loss": loss, "loss_mlm": loss}

    def export(self, directory, tokenizer):
        save_with_pooler(self.student_model(), self._frozen["pooler"], directory, tokenizer)
