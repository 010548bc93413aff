"""minilmv2: MiniLMv2 multi-head self-attention relation distillation (Wang et al. 2021), general
(task-agnostic) distillation on unlabeled text.

One teacher layer and one student layer ([minilmv2] teacher_layer_index / student_layer_index, 0-based,
negative = from the top) are compared. For each of q, k, v the projections (B, L, width) of both
models are merged over heads and re-split into num_relation_heads relation heads of width/num heads
dims, relations R = softmax(x x^T / sqrt(d_r)) over keys, and the loss is KL(R_teacher || R_student)
summed over keys, averaged over relation heads and non-padded query tokens (padded keys masked):
loss = L_qq + L_kk + L_vv (model/loss.relation_kl_loss). num_relation_heads must divide both widths,
so teacher and student may differ in width and in attention heads.

Teacher and student are plain encoders (AutoModel, no head). The seed's `init_from_student`
(PaddleNLP general_distill.py) maps onto [student] init_from: True = `pretrained` (the student starts
from [model] pretrained's weights, cut to [student] num_layers / layer_list), False (its default) =
`config` (random init of that architecture, with [student] num_layers / hidden_size / ...).
`teacher` takes the teacher's own layers. The export is an AutoModel checkpoint (pooler included) that a
task stage (`kd` / `bert_cls`) loads through [model] pretrained."""
import torch

from model.base import DistillModel, student_inputs, teacher_inputs
from model.parts.features import _projection, capture_qkv, check_layer, encoder_layers
from pretrained.loading import load_encoder, resolve_model_path
from model.parts.loss import relation_kl_loss
from model.parts.masked_lm import check_same_vocabulary
from model.parts.student import build_student
from utils.errors import ConfigError

PARTS = (("query", "loss_qq"), ("key", "loss_kk"), ("value", "loss_vv"))


def qkv_width(model, layer):
    return _projection(encoder_layers(model)[layer], "query").out_features


class MiniLMv2(DistillModel):
    paper = "Wang et al. 2021, MiniLMv2: Multi-Head Self-Attention Relation Distillation for Compressing Pretrained Transformers"
    find_unused_parameters = True  # the student's pooler, and its layers above student_layer_index, get no gradient

    def __init__(self, config):
        super().__init__()
        if config.get("data", "valid_file"):
            raise ConfigError(f"{config.source('data', 'valid_file')}: [data] valid_file: minilmv2 has no metric on "
                              "unlabeled text; leave it empty (the final student is kept and exported)")
        path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
        self.set_teacher(load_encoder(path, "[distill] teacher"))
        check_same_vocabulary(config, "minilmv2")
        self.student = build_student(config, None, self.teacher)
        self.t_layer = check_layer(self.teacher, config.get("minilmv2", "teacher_layer_index"), "[minilmv2] teacher_layer_index")
        self.s_layer = check_layer(self.student, config.get("minilmv2", "student_layer_index"), "[minilmv2] student_layer_index")
        self.num_heads = config.get("minilmv2", "num_relation_heads")
        t_width, s_width = qkv_width(self.teacher, self.t_layer), qkv_width(self.student, self.s_layer)
        if self.num_heads <= 0 or t_width % self.num_heads or s_width % self.num_heads:
            raise ConfigError(f"[minilmv2] num_relation_heads = {self.num_heads}: must divide the teacher's q/k/v width "
                              f"{t_width} and the student's {s_width}")

    def forward(self, batch):
        if not self.training:  # nothing to score on unlabeled text; the [CLS] state for anyone who asks
            return {"logits": self.student(**student_inputs(batch)).last_hidden_state[:, 0]}
        with capture_qkv(self.student, [self.s_layer]) as s_store:
            self.student(**student_inputs(batch))
        with torch.inference_mode(), capture_qkv(self.teacher, [self.t_layer]) as t_store:
            self.teacher(**teacher_inputs(batch))
        mask = batch["attention_mask"]
        out = {name: relation_kl_loss(s_store[(self.s_layer, part)], t_store[(self.t_layer, part)].clone(), self.num_heads, mask)
               for part, name in PARTS}
        out["loss"] = out["loss_qq"] + out["loss_kk"] + out["loss_vv"]
        return out
