"""pkd: BERT-PKD, Patient Knowledge Distillation (Sun et al. 2019).

Loss = soft_weight * KD(T) + hard_weight * CE + beta * patience, where patience is the squared
distance between L2-normalised [CLS] states of the student's first k-1 layers and the teacher layers
chosen by PKD-Skip or PKD-Last (model/layer_map.py). The paper's (1-alpha) CE + alpha KD is
hard_weight = 1-alpha, soft_weight = alpha.
"""
import torch

from model.base import student_inputs
from model.kd import KD
from model.layer_map import pkd_teacher_layers
from model.loss import patience_loss, soft_loss, task_loss
from utils.errors import ConfigError


class PKD(KD):
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

    def forward(self, batch):
        out_s = self.student(**student_inputs(batch), output_hidden_states=self.training)
        out = {"logits": out_s.logits}
        if "labels" in batch:
            out["loss_hard"] = task_loss(out_s.logits, batch["labels"])
        if not self.training:
            if "labels" in batch:
                out["loss"] = out["loss_hard"]
            return out
        t_logits, t_hidden = self.run_teacher(batch, hidden=True)
        out["loss_kd"] = soft_loss(out_s.logits, t_logits, self.kind, self.temperature)
        out["loss"] = self.soft_weight * out["loss_kd"]
        if self.pairs:  # hidden_states[0] is the embedding output; layer l is hidden_states[l + 1]
            s_cls = torch.stack([out_s.hidden_states[s + 1][:, 0] for s, _ in self.pairs])
            t_cls = torch.stack([t_hidden[t + 1][:, 0] for _, t in self.pairs])
            out["loss_pt"] = patience_loss(s_cls, t_cls)
            out["loss"] = out["loss"] + self.beta * out["loss_pt"]
        if "loss_hard" in out and self.hard_weight:
            out["loss"] = out["loss"] + self.hard_weight * out["loss_hard"]
        return out
