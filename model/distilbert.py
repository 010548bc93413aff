"""distilbert: DistilBERT general distillation (Sanh et al. 2019), the loss mix of HF transformers'
examples/research_projects/distillation/distiller.py on masked-LM batches (formatter `mlm`).

    loss = alpha_ce * KL(softmax(t/T) || softmax(s/T)) * T^2     soft targets from the teacher's MLM logits
         + alpha_mlm * CE(s, masked token)                        the student's own MLM loss
         + alpha_cos * (1 - cos(h_s, h_t))                        last hidden states, non-padding tokens

- The soft term is HF's KLDivLoss(reduction="batchmean") on the selected rows times T^2: the mean over
  positions of KL, which differs from the soft cross-entropy only by the teacher's entropy (constant
  for the student, same gradient). `[distilbert] restrict_ce_to_mask` = true takes the masked positions
  only (HF's --restrict_ce_to_mask); false takes every non-padding position (HF's default).
- MLM CE is the mean over masked positions (HF's CrossEntropyLoss with ignore_index=-100); cosine is
  nn.CosineEmbeddingLoss with target 1 = mean of 1 - cos over non-padding positions.
- Teacher = a ForMaskedLM with a trained head (the mlm_head stage's export); student = [student]
  (init_from = teacher with one layer out of two, as Sanh et al. do), also a ForMaskedLM. Which layers: the
  shipped default keeps 1, 3, 5 of the 6-layer teacher (one of two, ending at the top, as HF's
  scripts/extract_distilbert.py keeps BERT-base's top layer 11); [student] layer_select = every_other keeps
  0, 2, 4, the bottom-anchored half of that script's 0, 2, 4, 7, 9, 11
  (config/general/distilbert_general_every_other.config). Both read the same masked inputs. Task fine-tuning is a later `kd` / `bert_cls` stage
  with [model] pretrained = this run's export (which carries the teacher's pooler, model/parts/masked_lm.py).
"""
import torch

from model.base import DistillModel, student_inputs, teacher_inputs
from pretrained.loading import load_masked_lm, resolve_model_path
from model.parts.loss import cosine_hidden_loss, hard_ce_loss, soft_kl_loss
from model.parts.masked_lm import (IGNORE, check_same_vocabulary, encode, head_logits, mlm_eval_output, save_with_pooler,
                             source_pooler)
from model.parts.student import build_student
from utils.errors import ConfigError


class DistilBERT(DistillModel):
    paper = "Sanh et al. 2019, DistilBERT, a distilled version of BERT: smaller, faster, cheaper and lighter"
    def __init__(self, config):
        super().__init__()
        path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
        self.set_teacher(load_masked_lm(path, "[distill] teacher", require_head=True))
        check_same_vocabulary(config, "distilbert")
        self.student = build_student(config, None, self.teacher, load=load_masked_lm)  # a new head learns from CE
        self.alpha_ce = config.get("distilbert", "alpha_ce")
        self.alpha_mlm = config.get("distilbert", "alpha_mlm")
        self.alpha_cos = config.get("distilbert", "alpha_cos")
        self.restrict = config.get("distilbert", "restrict_ce_to_mask")
        self.temperature = config.get("distill", "temperature")
        t_width, s_width = self.teacher.config.hidden_size, self.student.config.hidden_size
        if self.alpha_cos and t_width != s_width:
            raise ConfigError(f"[student] hidden_size = {s_width}: the cosine loss compares last hidden states, the "
                              f"teacher's are {t_width} wide; use the teacher's width or [distilbert] alpha_cos = 0")
        self._frozen["pooler"] = source_pooler(path, "[distill] teacher")

    def forward(self, batch):
        if not self.training:
            return mlm_eval_output(self.student, batch)
        labels, attention = batch["labels"], batch["attention_mask"]
        masked = labels != IGNORE
        rows = masked if self.restrict else attention.bool()  # positions whose MLM distributions are matched
        s_hidden = encode(self.student, student_inputs(batch))
        s_logits = head_logits(self.student, s_hidden, rows)
        with torch.inference_mode():
            t_hidden = encode(self.teacher, teacher_inputs(batch))
            t_logits = head_logits(self.teacher, t_hidden, rows)
        t_hidden, t_logits = t_hidden.clone(), t_logits.clone()
        out = {"loss_ce": soft_kl_loss(s_logits, t_logits, self.temperature),
               "loss_mlm": hard_ce_loss(s_logits[masked[rows]], labels[masked]),
               "loss_cos": cosine_hidden_loss(s_hidden, t_hidden, attention)}
        out["loss"] = self.alpha_ce * out["loss_ce"] + self.alpha_mlm * out["loss_mlm"] + self.alpha_cos * out["loss_cos"]
        return out

    def export(self, directory, tokenizer):
        save_with_pooler(self.student_model(), self._frozen["pooler"], directory, tokenizer)
