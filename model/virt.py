"""virt: VIRT, representation-based text matching with virtual interaction (Li et al. 2022, "VIRT:
Improving Representation-based Text Matching via Virtual Interaction"), following the authors' code.

Student: one encoder applied to each text alone (siamese towers, shared weights; [model] pretrained),
inputs laid out by formatter/bipartition.py, token states pooled by mean over valid tokens.
- model_type = siamese: the plain two-tower classifier on [u, v, |u-v|, u*v] (no interaction at all).
- model_type = late_fusion: VIRT's adapted interaction on the towers' LAST states only: each token of one
  text attends to the other text (softmax(h_x h_y^T / sqrt(H))), [h, h~, h - h~, h * h~] -> linear + GELU,
  mean pooled per text, then the predictor on [u, v, |u-v|, u*v]. use_resnet_predict puts a residual MLP
  (linear, GELU, + GELU(linear)) before the output layer instead of a single linear layer.
The document tower's output (pooled vector, or token states for late fusion) does not depend on the query,
so it is computed once per document and cached (encode_docs / score; process/doc_cache.py).

Virtual interaction (use_kd_att): at every aligned layer (student layer m <- teacher layer m*N/M, the
uniform map of model/parts/layer_map.py) the student's virtual attention x->y is softmax(Q_x K_y^T / sqrt(d))
per head, from the student's own query/key projections of tower-x and tower-y token states at that layer
(what the layer would attend to if the texts met); y->x likewise. Targets are the teacher's cross-attention
submatrices of the bipartition input, x rows / y columns and the reverse ([match] renormalize_teacher_att:
renormalised over the other text, default, or raw). Loss: kd_weight_att * sum over layers and both
directions of the MSE over valid token pairs (model/parts/loss.py virtual_attention_loss). The doc tower's [CLS]
has no counterpart in the teacher's input and is left out. When head counts differ, head-averaged maps are
compared. Logit distillation: kd_weight_logit * (KL*T^2 and/or MSE). The gold-label cross-entropy is always
on, as in the seed's code. Without any KD flag no teacher is loaded (the plain two-tower baseline)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from model.base import DistillModel
from model.parts.features import attention_scores, capture_qkv
from model.parts.layer_map import tinybert_layer_map
from model.parts.loss import logit_mse_loss, soft_kl_loss, task_loss, virtual_attention_loss
from model.parts.match_common import (check_positions, drop_pooler, export_heads, joint_inputs, load_match_teacher,
                                masked_softmax, mean_pool, pair_features, teacher_cross_attention, teacher_logits,
                                tower_inputs)
from model.parts.student import build_student
from utils.errors import ConfigError
from utils.tower_lengths import tower_lengths
from efficiency.flops import dummy_tower, encoder_flops, linear_flops

QK = ("query", "key")


class Predictor(nn.Module):
    """Features -> logits: one linear layer, or the residual MLP of use_resnet_predict."""

    def __init__(self, width_in, hidden, labels, resnet, dropout):
        super().__init__()
        self.resnet, self.dropout = resnet, nn.Dropout(dropout)
        if resnet:
            self.inp, self.block = nn.Linear(width_in, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden if resnet else width_in, labels)

    def forward(self, features):
        x = self.dropout(features)
        if self.resnet:
            x = F.gelu(self.inp(x))
            x = x + F.gelu(self.block(x))
        return self.out(x)

    def flops(self, width_in, hidden, labels):
        if self.resnet:
            return linear_flops(1, width_in, hidden) + linear_flops(1, hidden, hidden) + linear_flops(1, hidden, labels)
        return linear_flops(1, width_in, labels)


def require_bipartition(config, name):
    if config.get("data", "formatter_type") != "bipartition":
        raise ConfigError(f"{config.source('data', 'formatter_type')}: [data] formatter_type = "
                          f"{config.get('data', 'formatter_type')}: {name} needs formatter_type = bipartition")


class VIRT(DistillModel):
    two_tower = True

    def __init__(self, config):
        super().__init__()
        require_bipartition(config, "virt")
        labels = config.get("model", "num_labels")
        get = lambda key: config.get("virt", key)
        self.model_type, self.pooling = get("model_type"), config.get("match", "pooling_strategy")
        if self.pooling != "mean":
            raise ConfigError(f"{config.source('match', 'pooling_strategy')}: [match] pooling_strategy = {self.pooling}: "
                              "the two-tower students pool by mean (as in the VIRT paper)")
        self.use_att, self.use_kl, self.use_mse = get("use_kd_att"), get("use_kd_logit_kl"), get("use_kd_logit_mse")
        self.w_att, self.w_logit = get("kd_weight_att"), get("kd_weight_logit")
        self.renormalize, self.temperature = config.get("virt", "renormalize_teacher_att"), config.get("distill", "temperature")
        self.query_length, self.doc_length = tower_lengths(config)
        if self.use_att or self.use_kl or self.use_mse:
            if not config.get("distill", "teacher"):
                raise ConfigError("[distill] teacher: empty, but [virt] use_kd_att / "
                                  "use_kd_logit_kl / use_kd_logit_mse need the cross-encoder teacher")
            teacher, self.teacher_pooling = load_match_teacher(config, labels)
            check_positions(teacher, self.query_length + self.doc_length - 1, "[distill] teacher")
            self.set_teacher(teacher)
        encoder = build_student(config, None, self.teacher)
        self.student = drop_pooler(getattr(encoder, "base_model", encoder))
        check_positions(self.student, max(self.query_length, self.doc_length), "[model] pretrained")
        cfg = self.student.config
        width, dropout = cfg.hidden_size, cfg.hidden_dropout_prob
        if self.model_type == "late_fusion":
            self.fuse = nn.Linear(4 * width, width)
        self.predictor = Predictor(4 * width, width, labels, get("use_resnet_predict"), dropout)
        self.labels = labels
        if self.use_att:
            t_layers = self.teacher.config.num_hidden_layers
            self.layer_pairs = list(enumerate(tinybert_layer_map(t_layers, cfg.num_hidden_layers)))
            self.same_heads = cfg.num_attention_heads == self.teacher.config.num_attention_heads

    # --- towers and heads ---
    def tower(self, inputs):
        return self.student(**inputs).last_hidden_state

    def encode_docs(self, b_inputs):
        """What the document side contributes, computed without the query (cacheable)."""
        states = self.tower(b_inputs)
        mask = b_inputs["attention_mask"]
        if self.model_type == "siamese":
            return {"pooled": mean_pool(states, mask)}
        return {"states": states, "mask": mask}

    def score(self, a_inputs, docs):
        """Logits from the query tower and cached document entries (encode_docs)."""
        states = self.tower(a_inputs)
        return self.head(states, a_inputs["attention_mask"], docs)

    def head(self, a_states, a_mask, docs):
        if self.model_type == "siamese":
            return self.predictor(pair_features(mean_pool(a_states, a_mask), docs["pooled"]))
        b_states, b_mask = docs["states"], docs["mask"]
        scores = a_states @ b_states.transpose(1, 2) / math.sqrt(a_states.shape[-1])  # (B, Lq, Ld)
        a_tilde = masked_softmax(scores, b_mask) @ b_states
        b_tilde = masked_softmax(scores.transpose(1, 2), a_mask) @ a_states
        fuse = lambda h, t: F.gelu(self.fuse(torch.cat([h, t, h - t, h * t], dim=-1)))
        u, v = mean_pool(fuse(a_states, a_tilde), a_mask), mean_pool(fuse(b_states, b_tilde), b_mask)
        return self.predictor(pair_features(u, v))

    # --- virtual interaction ---
    def virtual_attention(self, qkv_a, qkv_b, a_mask, b_mask, layer):
        """Student (x->y, y->x) virtual attention maps at one student layer; the doc [CLS] is dropped."""
        heads = self.student.config.num_attention_heads
        qa, ka = qkv_a[(layer, "query")], qkv_a[(layer, "key")]
        qb, kb = qkv_b[(layer, "query")][:, 1:], qkv_b[(layer, "key")][:, 1:]
        xy = attention_scores(qa, kb, heads, b_mask[:, 1:]).softmax(-1)
        yx = attention_scores(qb, ka, heads, a_mask).softmax(-1)
        return xy, yx

    def attention_loss(self, qkv_a, qkv_b, batch, t_maps):
        a_mask, b_mask = batch["a_attention_mask"], batch["b_attention_mask"]
        total = 0.0
        for (s_layer, _), (t_xy, t_yx) in zip(self.layer_pairs, t_maps):
            s_xy, s_yx = self.virtual_attention(qkv_a, qkv_b, a_mask, b_mask, s_layer)
            if not self.same_heads:
                s_xy, s_yx, t_xy, t_yx = (m.mean(1, keepdim=True) for m in (s_xy, s_yx, t_xy, t_yx))
            total = total + virtual_attention_loss(s_xy, t_xy, a_mask, b_mask[:, 1:])
            total = total + virtual_attention_loss(s_yx, t_yx, b_mask[:, 1:], a_mask)
        return total

    def forward(self, batch):
        a_in, b_in = tower_inputs(batch, "a"), tower_inputs(batch, "b")
        capture = self.training and self.use_att
        if capture:
            with capture_qkv(self.student, [s for s, _ in self.layer_pairs], QK, "[virt] student layer") as store:
                a_states = self.tower(a_in)
                qkv_a = dict(store)
                b_states = self.tower(b_in)
                qkv_b = dict(store)
        else:
            a_states, b_states = self.tower(a_in), self.tower(b_in)
        b_mask = b_in["attention_mask"]
        docs = {"pooled": mean_pool(b_states, b_mask)} if self.model_type == "siamese" else {"states": b_states, "mask": b_mask}
        logits = self.head(a_states, a_in["attention_mask"], docs)
        out = {"logits": logits}
        if "labels" in batch:
            out["loss_hard"] = task_loss(logits, batch["labels"])
        if not self.training or self.teacher is None:
            if "labels" in batch:
                out["loss"] = out["loss_hard"]
            return out
        if "labels" not in batch:
            raise ConfigError("[model] model_name = virt: training needs gold labels; the training data has none")
        loss = out["loss_hard"]
        if self.use_att:
            t_logits, t_maps = teacher_cross_attention(self.teacher, self.teacher_pooling, joint_inputs(batch),
                                                       [t for _, t in self.layer_pairs], self.query_length, self.renormalize)
            out["loss_att"] = self.attention_loss(qkv_a, qkv_b, batch, t_maps)
            loss = loss + self.w_att * out["loss_att"]
        else:
            t_logits = teacher_logits(self.teacher, self.teacher_pooling, joint_inputs(batch))
        if self.use_kl:
            out["loss_kl"] = soft_kl_loss(logits, t_logits, self.temperature)
            loss = loss + self.w_logit * out["loss_kl"]
        if self.use_mse:
            out["loss_mse"] = logit_mse_loss(logits, t_logits)
            loss = loss + self.w_logit * out["loss_mse"]
        out["loss"] = loss
        return out

    # --- cost ---
    def analytic_flops(self):
        """{"offline": per document, "online": per query given the cached document} at the configured lengths."""
        cfg, lq, ld, h = self.student.config, self.query_length, self.doc_length, self.student.config.hidden_size
        online = encoder_flops(cfg, lq) + self.predictor.flops(4 * h, h, self.labels)
        if self.model_type == "late_fusion":
            online += 3 * 2 * lq * ld * h + linear_flops(lq + ld, 4 * h, h)  # scores, two weighted sums, fuse
        return {"offline": encoder_flops(cfg, ld), "online": online}

    def flops_probes(self):
        """Callables running the offline (document) and online (query) parts at batch size 1."""
        docs = dummy_tower(self.doc_length)
        query = dummy_tower(self.query_length)
        cached = self.encode_docs(docs)
        return {"offline": lambda: self.encode_docs(docs), "online": lambda: self.score(query, cached)}

    def export(self, directory, tokenizer):
        super().export(directory, tokenizer)
        export_heads(self, directory, {"model_name": "virt", "model_type": self.model_type, "labels": self.labels,
                                       "max_seq_length_query": self.query_length, "max_seq_length_doc": self.doc_length})
