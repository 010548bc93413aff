"""pkd: BERT-PKD, Patient Knowledge Distillation (Sun et al. 2019).

Loss = soft_weight * KD(T) + hard_weight * CE + beta * patience, as the authors' code computes each term
(intersun/PKD-for-BERT-Model-Compression, src/KD_loss.py and NLI_KD_training.py):
- patience: F.mse_loss between the L2-normalised [CLS] states of the student's first k-1 layers and the teacher
  layers chosen by PKD-Skip or PKD-Last (model/parts/layer_map.py), a mean over layers, batch and hidden units;
- KD: nn.KLDivLoss(reduction='mean') * T^2, a mean over batch x classes (model/parts/loss.py elementwise_kl_loss);
  [distill] kd_loss = mse and a one-output (regression) head use logit MSE, as for every method;
- the paper's alpha KD + (1-alpha) CE is soft_weight = alpha, hard_weight = 1-alpha.
The shipped settings are the authors' PKD-Skip recipe (src/argument_parser.py, get_predefine_argv 'kd.cls': alpha 0.7,
beta 500, T 10). Departure: their learning rate (1e-5) and batch are not copied; the student keeps the task's
training budget so that it and its twins see the same optimisation.
"""
import torch

from model.kd import KD
from model.parts.layer_map import pkd_teacher_layers
from model.parts.loss import elementwise_kl_loss, patience_loss, soft_loss
from utils.errors import ConfigError


class PKD(KD):
    paper = "Sun et al. 2019, Patient Knowledge Distillation for BERT Model Compression"
    uses_hidden = True
    hidden_reads_cls_only = True  # patience reads [CLS] only, so the last layers may run for [CLS] alone

    def __init__(self, config):
        super().__init__(config)
        t_config, s_config = self.teacher.config, self.student_model().config
        if t_config.hidden_size != s_config.hidden_size:
            raise ConfigError(f"[student] hidden_size = {s_config.hidden_size}: PKD compares [CLS] states, the teacher's are "
                              f"{t_config.hidden_size} wide")
        teacher_layers = pkd_teacher_layers(t_config.num_hidden_layers, s_config.num_hidden_layers,
                                            config.get("pkd", "strategy"))
        self.pairs = list(enumerate(teacher_layers))  # (student layer, teacher layer), 0-based
        self.beta = config.get("pkd", "beta")

    def soft_term(self, student_logits, teacher_logits):
        if self.kind != "kl" or student_logits.shape[-1] == 1:
            return soft_loss(student_logits, teacher_logits, self.kind, self.temperature)
        return elementwise_kl_loss(student_logits, teacher_logits, self.temperature)

    def intermediate_loss(self, out, student_hidden, teacher_hidden):
        """beta * patience over the (student, teacher) layer pairs; hidden_states[l + 1] is layer l."""
        if not self.pairs:
            return 0.0
        s_cls = torch.stack([student_hidden[s + 1][:, 0] for s, _ in self.pairs])
        t_cls = torch.stack([teacher_hidden[t + 1][:, 0] for _, t in self.pairs])
        out["loss_pt"] = patience_loss(s_cls, t_cls)
        return self.beta * out["loss_pt"]
