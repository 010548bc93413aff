"""bert_bipartition: the cross-encoder teacher of VIRT (Li et al. 2022; its interaction model).

Fine-tunes a BERT-family encoder on text pairs laid out by formatter/bipartition.py,
[CLS] a... [PAD]... [SEP] b... [PAD]... [SEP], with the sentence vector = mean over the valid (non-PAD)
token states ([match] pooling_strategy = mean) fed to the classification head. The export is a plain
BertForSequenceClassification whose config carries pooling_strategy, so the students (virt, dc_bert) know
to pool its outputs the same way. Its [CLS] pooler stays (unused under mean pooling, hence
find_unused_parameters) so that plain HF loading and forward still work."""
import torch

from model.base import DistillModel
from model.parts.loss import task_loss
from model.parts.match_common import check_bert_classifier, check_positions, joint_inputs, pooled_logits
from model.parts.student import build_student
from utils.errors import ConfigError
from utils.tower_lengths import tower_lengths
from efficiency.flops import dummy_tower, encoder_flops, linear_flops


class BertBipartition(DistillModel):
    find_unused_parameters = True  # the [CLS] pooler under mean pooling

    def __init__(self, config):
        super().__init__()
        if config.get("data", "formatter_type") != "bipartition":
            raise ConfigError(f"{config.source('data', 'formatter_type')}: [data] formatter_type = "
                              f"{config.get('data', 'formatter_type')}: bert_bipartition reads the bipartition layout; "
                              "set formatter_type = bipartition")
        if config.get("student", "init_from") == "teacher":
            raise ConfigError("[student] init_from = teacher: bert_bipartition trains without a teacher; use pretrained or config")
        self.pooling = config.get("match", "pooling_strategy")
        self.student = build_student(config, config.get("model", "num_labels"))
        check_bert_classifier(self.student, "[model] pretrained")
        self.student.config.pooling_strategy = self.pooling
        self.lengths = tower_lengths(config)
        check_positions(self.student, self.lengths[0] + self.lengths[1] - 1, "[model] pretrained")

    def forward(self, batch):
        logits, _ = pooled_logits(self.student, joint_inputs(batch), self.pooling)
        out = {"logits": logits}
        if "labels" in batch:
            out["loss"] = out["loss_hard"] = task_loss(logits, batch["labels"])
        return out

    def online_forward(self, inputs):
        """The whole cross-encoder: nothing of it can be computed before the query arrives."""
        return pooled_logits(self.student, inputs, self.pooling)[0]

    def analytic_flops(self):
        """The cross-encoder has no cacheable part: everything is online, over Lq + Ld - 1 tokens."""
        cfg = self.student.config
        length = self.lengths[0] + self.lengths[1] - 1
        return {"offline": 0, "online": encoder_flops(cfg, length, pooler=True) + linear_flops(1, cfg.hidden_size, cfg.num_labels)}

    def flops_probes(self):
        lq, ld = self.lengths
        inputs = dummy_tower(lq + ld - 1)
        inputs["token_type_ids"] = torch.cat([torch.zeros(1, lq, dtype=torch.long), torch.ones(1, ld - 1, dtype=torch.long)], 1)
        return {"online": lambda: self.online_forward(inputs)}
