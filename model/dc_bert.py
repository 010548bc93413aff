"""dc_bert: DC-BERT (Zhang et al. 2020, "DC-BERT: Decoupling Question and Document for Efficient Contextual
Encoding"), in the XiaoIce distillation framework's "teacher and student trained together" family.

The fine-tuned cross-encoder teacher ([distill] teacher, e.g. a bert_bipartition run) is cut in two:
- decoupled towers = the teacher's bottom layers (teacher layers - num_interaction_layers of them, or
  [student] num_layers, picked by layer_select / layer_list), one shared encoder applied to the query and
  to the document alone (the document side is cached: encode_docs / score). This encoder is the exported student.
- interaction on top (`last_layer_model_type`):
  transformer: the two towers' token states are concatenated, given DC-BERT's global position and segment
  embeddings (initialised from the teacher's position / token-type tables and LayerNorm), and run through
  num_interaction_layers transformer layers copied from the teacher, the top one from teacher layer
  `copy_from_bert_layer_num` (-1 = the last, that framework's default) and the others the layers below it; then mean
  pooling over valid tokens and a copy of the teacher's classifier.
  linear: no token interaction; [u, v, |u-v|, u*v] of the mean-pooled towers -> linear + tanh -> a copy of the
  teacher's classifier.
Training is one fine-tuning stage in which the frozen teacher runs beside the student on every batch (that
framework's first family: no separate distillation stage): loss = hard_weight * CE + soft_weight * soft loss to the teacher's
logits ([distill] kd_loss, temperature)."""
import copy

import torch
from torch import nn

from model.base import DistillModel
from model.parts.features import encoder_layers
from model.parts.student import cut_layers
from model.parts.layer_map import select_layers
from model.parts.loss import soft_loss, task_loss
from model.parts.match_common import (check_positions, drop_pooler, export_heads, joint_inputs, load_match_teacher, mean_pool,
                                pair_features, teacher_logits, tower_inputs)
from model.theseus import extended_mask
from model.virt import require_bipartition
from utils.errors import ConfigError
from utils.tower_lengths import tower_lengths
from efficiency.flops import dummy_tower, encoder_flops, encoder_layer_flops, linear_flops


class DCBert(DistillModel):
    two_tower = True

    def __init__(self, config):
        super().__init__()
        require_bipartition(config, "dc_bert")
        labels = config.get("model", "num_labels")
        if not config.get("distill", "teacher"):
            raise ConfigError("[distill] teacher: dc_bert is built from the "
                              "fine-tuned cross-encoder teacher; set it (e.g. a bert_bipartition run directory)")
        teacher, self.teacher_pooling = load_match_teacher(config, labels)
        self.set_teacher(teacher)
        self.query_length, self.doc_length = tower_lengths(config)
        check_positions(teacher, self.query_length + self.doc_length, "[distill] teacher")
        self.kind = config.get("dc_bert", "last_layer_model_type")
        n = teacher.config.num_hidden_layers
        k = config.get("dc_bert", "num_interaction_layers") if self.kind == "transformer" else 0
        where = lambda key: config.source("dc_bert", key)
        if self.kind == "transformer" and not 1 <= k < n:
            raise ConfigError(f"{where('num_interaction_layers')}: [dc_bert] num_interaction_layers = {k}: must be 1..{n - 1} "
                              f"(the teacher has {n} layers)")
        top = config.get("dc_bert", "copy_from_bert_layer_num")
        if not -n <= top < n:
            raise ConfigError(f"{where('copy_from_bert_layer_num')}: [dc_bert] copy_from_bert_layer_num = {top}: "
                              f"the teacher has layers 0..{n - 1} (-1 = the last)")
        top %= n
        if top - k + 1 < 0:
            raise ConfigError(f"{where('copy_from_bert_layer_num')}: [dc_bert] copy_from_bert_layer_num = {top}: "
                              f"{k} interaction layers need layers {top - k + 1}..{top}")
        keep = select_layers(n, config.get("student", "num_layers") or n - k, config.get("student", "layer_select")
                             if config.get("student", "num_layers") else "first", config.get("student", "layer_list"))
        self.student = drop_pooler(cut_layers(teacher.base_model, keep))
        cfg = teacher.config
        width = cfg.hidden_size
        if self.kind == "transformer":
            self.interaction = nn.ModuleList(copy.deepcopy(layer) for layer in encoder_layers(teacher)[top - k + 1:top + 1])
            length = self.query_length + self.doc_length
            embeddings = teacher.base_model.embeddings
            self.position = nn.Embedding(length, width)
            self.segment = nn.Embedding(2, width)
            self.norm = copy.deepcopy(embeddings.LayerNorm)
            with torch.no_grad():
                self.position.weight.copy_(embeddings.position_embeddings.weight[:length])
                types = embeddings.token_type_embeddings.weight
                self.segment.weight.copy_(types[:2] if types.shape[0] >= 2 else types[:1].expand(2, -1))
        else:
            self.pair = nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.classifier = copy.deepcopy(teacher.classifier)
        self.labels, self.tower_layers, self.interaction_layers = labels, len(keep), k
        self.soft_weight, self.hard_weight = config.get("distill", "soft_weight"), config.get("distill", "hard_weight")
        self.soft_kind, self.temperature = config.get("distill", "kd_loss"), config.get("distill", "temperature")

    def tower(self, inputs):
        return self.student(**inputs).last_hidden_state

    def encode_docs(self, b_inputs):
        """The document tower's token states (independent of the query: cacheable)."""
        return {"states": self.tower(b_inputs), "mask": b_inputs["attention_mask"]}

    def score(self, a_inputs, docs):
        return self.head(self.tower(a_inputs), a_inputs["attention_mask"], docs["states"], docs["mask"])

    def head(self, a_states, a_mask, b_states, b_mask):
        if self.kind == "linear":
            u, v = mean_pool(a_states, a_mask), mean_pool(b_states, b_mask)
            return self.classifier(self.dropout(torch.tanh(self.pair(pair_features(u, v)))))
        hidden = torch.cat([a_states, b_states], dim=1)
        lq = a_states.shape[1]
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        hidden = hidden + self.position(positions)[None] + self.segment((positions >= lq).long())[None]
        hidden = self.dropout(self.norm(hidden))
        mask = torch.cat([a_mask, b_mask], dim=1)
        layer_mask = extended_mask(self.interaction[0].attention.self.config, hidden, mask)
        for layer in self.interaction:
            hidden = layer(hidden, layer_mask)
        return self.classifier(self.dropout(mean_pool(hidden, mask)))

    def forward(self, batch):
        a_in, b_in = tower_inputs(batch, "a"), tower_inputs(batch, "b")
        logits = self.head(self.tower(a_in), a_in["attention_mask"], self.tower(b_in), b_in["attention_mask"])
        out = {"logits": logits}
        if "labels" in batch:
            out["loss_hard"] = task_loss(logits, batch["labels"])
        if not self.training:
            if "labels" in batch:
                out["loss"] = out["loss_hard"]
            return out
        t_logits = teacher_logits(self.teacher, self.teacher_pooling, joint_inputs(batch))
        out["loss_kd"] = soft_loss(logits, t_logits, self.soft_kind, self.temperature)
        loss = self.soft_weight * out["loss_kd"]
        if "labels" in batch and self.hard_weight:
            loss = loss + self.hard_weight * out["loss_hard"]
        out["loss"] = loss
        return out

    def analytic_flops(self):
        cfg, lq, ld, h = self.student.config, self.query_length, self.doc_length, self.student.config.hidden_size
        online = encoder_flops(cfg, lq, self.tower_layers) + linear_flops(1, h, self.labels)
        if self.kind == "transformer":
            online += self.interaction_layers * encoder_layer_flops(lq + ld, h, cfg.intermediate_size)
        else:
            online += linear_flops(1, 4 * h, h)
        return {"offline": encoder_flops(cfg, ld, self.tower_layers), "online": online}

    def flops_probes(self):
        docs, query = dummy_tower(self.doc_length), dummy_tower(self.query_length)
        cached = self.encode_docs(docs)
        return {"offline": lambda: self.encode_docs(docs), "online": lambda: self.score(query, cached)}

    def export(self, directory, tokenizer):
        super().export(directory, tokenizer)
        export_heads(self, directory, {"model_name": "dc_bert", "last_layer_model_type": self.kind, "labels": self.labels,
                                       "max_seq_length_query": self.query_length, "max_seq_length_doc": self.doc_length})
