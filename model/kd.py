"""kd: Hinton et al. 2015 knowledge distillation on the output logits (KL*T^2 or logit MSE) plus hard labels."""
from model.base import DistillModel, student_inputs
from model.hf_loader import load_classifier, resolve_model_path
from model.loss import soft_loss, task_loss
from model.student import build_student
from utils.errors import ConfigError


class KD(DistillModel):
    def __init__(self, config):
        super().__init__()
        path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
        teacher = load_classifier(path, "[distill] teacher")
        labels = config.get("model", "num_labels")
        if teacher.config.num_labels != labels:
            raise ConfigError(f"[distill] teacher: {path} has {teacher.config.num_labels} labels, the data has {labels}")
        self.set_teacher(teacher)
        self.student = build_student(config, labels, teacher)
        self.kind = config.get("distill", "kd_loss")
        self.temperature = config.get("distill", "temperature")
        self.soft_weight = config.get("distill", "soft_weight")
        self.hard_weight = config.get("distill", "hard_weight")

    def forward(self, batch):
        logits = self.student(**student_inputs(batch)).logits
        out = {"logits": logits}
        has_labels = "labels" in batch
        if has_labels:
            out["loss_hard"] = task_loss(logits, batch["labels"])
        if not self.training:
            if has_labels:
                out["loss"] = out["loss_hard"]
            return out
        out["loss_kd"] = soft_loss(logits, self.run_teacher(batch), self.kind, self.temperature)
        out["loss"] = self.soft_weight * out["loss_kd"]
        if has_labels and self.hard_weight:
            out["loss"] = out["loss"] + self.hard_weight * out["loss_hard"]
        return out
