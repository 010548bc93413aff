"""bottle_distill: stage 2 of Ding et al. 2022. The student's embedding becomes a bottleneck (vocab x e, then
e -> hidden; initialised from the truncated SVD of the pretrained word embeddings) and is trained, alone, to
reproduce the pretrained model's embedding-layer output token by token (masked MSE) on both sides of the
parallel data. The shared layers (copied from the pretrained model, frozen here) ride along, so the export is
the starting point of stage 3 (`init_from`)."""
import torch

from model.parts.loss import hidden_mse_loss
from model.parts.sentence_embedding import SentenceDistill
from model.parts.recurrent_student import albert_embedding_output
from utils.errors import ConfigError


class BottleDistill(SentenceDistill):
    recurrent = True
    bottleneck = True
    uses_teacher_table = False  # the target is the pretrained embedding layer, computed live (it is one lookup)
    student_forwards_per_train_example = 0  # embedding lookups only: the shared layers never run in training

    def make_student(self, source, config):
        if source.config.model_type == "albert":
            raise ConfigError(f"{config.source('model', 'pretrained')}: [model] pretrained: bottle_distill starts from a "
                              "BERT-family encoder (its embedding layer is the target), not an ALBERT export")
        student = super().make_student(source, config)
        self._frozen["embedding_teacher"] = source.embeddings.eval().requires_grad_(False)
        student.encoder.albert_layer_groups.requires_grad_(False)
        return student

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        self._frozen["embedding_teacher"].to(*args, **kwargs)
        return self

    def side_loss(self, batch, prefix):
        ids, types = batch[prefix + "input_ids"], batch.get(prefix + "token_type_ids")
        with torch.inference_mode():
            target = self._frozen["embedding_teacher"](input_ids=ids, token_type_ids=types).clone()
        mine = albert_embedding_output(self.student, ids, types)
        return hidden_mse_loss(mine, target, batch[prefix + "attention_mask"])

    def train_loss(self, batch, s_src, s_tgt):
        out = {"loss_en": self.side_loss(batch, ""), "loss_mul": self.side_loss(batch, "tgt_")}
        out["loss"] = out["loss_en"] + out["loss_mul"]
        return out

    def forward(self, batch):
        if self.training:  # the sentence embeddings play no part in this stage's loss
            return self.train_loss(batch, None, None)
        return super().forward(batch)
