"""kd: Hinton et al. 2015 knowledge distillation on the output logits (KL*T^2 or logit MSE) plus hard labels."""
from model.base import DistillModel, student_inputs
from efficiency.cls_only import cls_only_last_layer
from pretrained.loading import load_classifier, resolve_model_path
from model.parts.loss import soft_loss, task_loss
from model.parts.student import build_student
from utils.errors import ConfigError


class KD(DistillModel):
    paper = "Hinton et al. 2015, Distilling the Knowledge in a Neural Network"
    def __init__(self, config):
        super().__init__()
        path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
        teacher = load_classifier(path, "[distill] teacher")
        labels = config.get("model", "num_labels")
        if teacher.config.num_labels != labels:
            raise ConfigError(f"[distill] teacher: {path} has {teacher.config.num_labels} labels, the data has {labels}")
        self.set_teacher(teacher)
        self.student = self.make_student(config, labels)
        self.kind = config.get("distill", "kd_loss")
        self.temperature = config.get("distill", "temperature")
        self.soft_weight = config.get("distill", "soft_weight")
        self.hard_weight = config.get("distill", "hard_weight")
        self.use_cls_only(config)

    caches_teacher_logits = True  # the soft term needs the teacher's logits only (unless uses_hidden)
    uses_hidden = False  # methods matching intermediate layers set this and override intermediate_loss
    # rows without a gold label ([data] transfer_file) train it too: the teacher's outputs are their target, and the
    # hard term averages over the batch's labeled rows only (model/parts/loss.py task_loss)
    learns_without_labels = True

    def make_student(self, config, num_labels):
        """The trainable student (built after the teacher is set); Distilled-BiLSTM builds a BiLSTM instead."""
        return build_student(config, num_labels, self.teacher)

    def soft_term(self, student_logits, teacher_logits):
        """The soft loss to the teacher's logits ([distill] kd_loss); BERT-PKD uses its authors' own reduction."""
        return soft_loss(student_logits, teacher_logits, self.kind, self.temperature)

    def intermediate_loss(self, out, student_hidden, teacher_hidden):
        """Weighted intermediate-layer terms added to the loss (recording their parts in `out`); none for KD."""
        return 0.0

    def forward(self, batch):
        hidden = self.uses_hidden and self.training
        with cls_only_last_layer(self.student_model(), self.last_layer_cls_only(hidden)):
            out_s = self.student(**student_inputs(batch), output_hidden_states=hidden)
        out = {"logits": out_s.logits}
        has_labels = "labels" in batch
        if has_labels:
            out["loss_hard"] = task_loss(out_s.logits, batch["labels"])
        if not self.training:
            if has_labels:
                out["loss"] = out["loss_hard"]
            return out
        teacher = self.run_teacher(batch, hidden=hidden)
        t_logits, t_hidden = teacher if hidden else (teacher, None)
        out["loss_kd"] = self.soft_term(out_s.logits, t_logits)
        out["loss"] = self.soft_weight * out["loss_kd"]
        if hidden:
            out["loss"] = out["loss"] + self.intermediate_loss(out, out_s.hidden_states, t_hidden)
        if has_labels and self.hard_weight:
            out["loss"] = out["loss"] + self.hard_weight * out["loss_hard"]
        return out
