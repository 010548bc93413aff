"""bert_cls: fine-tune any HF encoder with a classification/regression head (teachers and no-teacher baselines)."""
from model.base import DistillModel, student_inputs
from efficiency.cls_only import cls_only_last_layer
from model.parts.loss import task_loss
from model.parts.student import build_student
from utils.errors import ConfigError


class BertCls(DistillModel):
    def __init__(self, config):
        super().__init__()
        if config.get("student", "init_from") == "teacher":
            raise ConfigError("[student] init_from = teacher: bert_cls trains without a teacher; use pretrained or config")
        self.student = build_student(config, config.get("model", "num_labels"))
        self.use_cls_only(config)

    def forward(self, batch):
        with cls_only_last_layer(self.student_model(), self.cls_only):
            logits = self.student(**student_inputs(batch)).logits
        out = {"logits": logits}
        if "labels" in batch:
            out["loss"] = out["loss_hard"] = task_loss(logits, batch["labels"])
        return out

