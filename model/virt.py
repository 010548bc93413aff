"""virt: VIRT, representation-based text matching with virtual interaction (Li et al. 2022, "VIRT:
Improving Representation-based Text Matching via Virtual Interaction"), following the authors' released code:
sbert_distill.py of github.com/lidan528/VIRT, the script their notes (注释.md) name for MNLI/QQP with
--kd_weight_att 400~700 (their RTE/BoolQ script _--sbert_distill_boolq.py computes the same losses and heads).
Their other release, open/representation-based_*.py (--use_virt, model_type virta), multiplies the attention
loss by 12 heads x the tower length and searches kd_weight_att in 0.1..1: not followed, so that
kd_weight_att 400-700 means here what it means in sbert_distill.py.

Student: one encoder applied to each text alone (siamese towers, shared weights; [model] pretrained),
inputs laid out by formatter/bipartition.py ([CLS] text [PAD]... [SEP]).
- model_type = late_fusion (their newly_late_interaction on the towers' last states H_x (B, Lx, H), H_y):
  e_x = mean over ALL Lx rows of softmax_y(H_x H_y^T / sqrt(H) - 10000 at y's padding) H_y, e_y likewise;
  the mean is unmasked ([CLS], [SEP] and padded rows count; a padded row still attends to valid tokens
  only); features [e_x, e_y, |e_x - e_y|, max(e_x, e_y)^2].
- model_type = siamese: the plain two-tower baseline, masked mean pooling and SBERT's [u, v, |u-v|, u*v]
  (Reimers & Gurevych 2019), as the siamese configs name it (their sbert model_type uses the max^2 feature instead).
- Predictor (their get_prediction_student / _use_resnet): dropout, then one linear layer; with
  use_resnet_predict a linear 4H -> 4H residual first: h = dropout(W1 x + b1) + x with x the dropped-out
  features, no activation, then the output layer. Weights truncated-normal (std initializer_range), biases 0.
The document tower's output (pooled vector, or token states for late fusion) does not depend on the query,
so it is computed once per document and cached (encode_docs / score; process/doc_cache.py).

Virtual interaction (use_kd_att; their get_attention_loss): at each aligned layer the student's virtual
attention x->y is softmax(Q_x K_y^T / sqrt(d)) per head from its own query/key projections of tower-x and
tower-y states, over the REAL tokens: rows and columns 1..L-2 of each tower ([CLS] and the last [SEP] dropped,
padding kept), -10000 added at y's padding; y->x likewise. Targets: the teacher's scaled scores sliced the
same way from the bipartition input (query rows 1..Lq-2, document columns Lq..L-2) and softmaxed with the
same padding mask ([virt] renormalize_teacher_att = true; false = the submatrix of its full attention map,
not the authors'). Loss (model/parts/loss.py virtual_attention_loss): per layer MSE(x->y) + MSE(y->x), each
the mean over every entry of the padded (B, heads, Lx-2, Ly-2) maps, then the mean over layers; the total adds
kd_weight_att times it. Logit distillation: kd_weight_logit times ONE term, MSE of the logits (mean over
entries) or KL(teacher || student); gold-label cross-entropy is always on, unweighted.

Where we depart, and why:
- Both use_kd_logit_mse and use_kd_logit_kl on is a ConfigError; their if/elif silently ran MSE only.
- KL is soft_kl_loss at [distill] temperature (default 1, theirs); they add 1e-5 to both distributions.
- Layers: they zip same-depth BERT-bases layer by layer; with other depths we use the uniform map of
  model/parts/layer_map.py (identity at equal depth), averaging over the student's layers. Different head
  counts compare head-averaged maps (they never differ there).
- Predictor dropout is the student's hidden_dropout_prob (their fixed 0.1 is BERT's value).
- Without any KD flag no teacher is loaded (they load it and leave it unused): the late_fusion twin config."""
import math

from torch import nn

from model.base import DistillModel
from model.parts.features import attention_scores, capture_qkv
from model.parts.layer_map import tinybert_layer_map
from model.parts.loss import logit_mse_loss, soft_kl_loss, task_loss, virtual_attention_loss
from model.parts.match_common import (additive_masked_softmax, check_positions, drop_pooler, export_heads, joint_inputs,
                                load_match_teacher, mean_pool, pair_features, teacher_cross_attention, teacher_logits,
                                tower_inputs, virt_pair_features)
from model.parts.student import build_student
from utils.errors import ConfigError
from utils.tower_lengths import tower_lengths
from efficiency.flops import dummy_tower, encoder_flops, linear_flops

QK = ("query", "key")


class Predictor(nn.Module):
    """Features (B, W) -> logits, as the VIRT authors' predictors: dropout and one linear layer, or with resnet
    the residual h = dropout(W1 x + b1) + x (W1: W -> W, no activation) on the dropped-out x before it."""

    def __init__(self, width, labels, resnet, dropout, init_range):
        super().__init__()
        self.resnet, self.dropout = resnet, nn.Dropout(dropout)
        if resnet:
            self.block = nn.Linear(width, width)
        self.out = nn.Linear(width, labels)
        for layer in (self.block, self.out) if resnet else (self.out,):  # TF's truncated normal: cut at 2 std
            nn.init.trunc_normal_(layer.weight, std=init_range, a=-2 * init_range, b=2 * init_range)
            nn.init.zeros_(layer.bias)

    def forward(self, features):
        x = self.dropout(features)
        if self.resnet:
            x = self.dropout(self.block(x)) + x
        return self.out(x)

    def flops(self, width, labels):
        return (linear_flops(1, width, width) if self.resnet else 0) + linear_flops(1, width, labels)


def late_interaction(a_states, a_mask, b_states, b_mask):
    """The authors' newly_late_interaction: [e_a, e_b, |e_a - e_b|, max(e_a, e_b)^2] with e_a the UNMASKED mean over
    a's rows of a's attention over b's states (softmax(H_a H_b^T / sqrt(H)), -10000 at b's padding), e_b likewise."""
    scores = a_states @ b_states.transpose(1, 2) / math.sqrt(a_states.shape[-1])  # (B, La, Lb)
    e_a = (additive_masked_softmax(scores, b_mask) @ b_states).mean(1)
    e_b = (additive_masked_softmax(scores.transpose(1, 2), a_mask) @ a_states).mean(1)
    return virt_pair_features(e_a, e_b)


def virtual_attention(q_x, k_y, y_mask, heads):
    """Student virtual attention x->y (B, heads, Lx-2, Ly-2) over the real tokens: softmax(Q_x K_y^T / sqrt(d)) per
    head, rows and columns 1..L-2 ([CLS] and the last [SEP] of both towers dropped), -10000 at y's padding."""
    return additive_masked_softmax(attention_scores(q_x[:, 1:-1], k_y[:, 1:-1], heads), y_mask[:, 1:-1])


def require_bipartition(config, name):
    if config.get("data", "formatter_type") != "bipartition":
        raise ConfigError(f"{config.source('data', 'formatter_type')}: [data] formatter_type = "
                          f"{config.get('data', 'formatter_type')}: {name} needs formatter_type = bipartition")


class VIRT(DistillModel):
    paper = "Li et al. 2022, VIRT: Improving Representation-based Text Matching via Virtual Interaction"
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
        if self.use_kl and self.use_mse:
            where = next((config.source("virt", k) for k in ("use_kd_logit_mse", "use_kd_logit_kl")
                          if config.source("virt", k) != "default"), "default")
            raise ConfigError(f"{where}: [virt] use_kd_logit_kl = true and use_kd_logit_mse = true: VIRT distils the logits "
                              "by one term at a time (MSE or KL, as the authors' sbert_distill.py); set one to false")
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
        self.predictor = Predictor(4 * cfg.hidden_size, labels, get("use_resnet_predict"), cfg.hidden_dropout_prob,
                                   cfg.initializer_range)
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
        return self.predictor(late_interaction(a_states, a_mask, docs["states"], docs["mask"]))

    # --- virtual interaction ---
    def attention_loss(self, qkv_a, qkv_b, batch, t_maps):
        """virtual_attention_loss of the student's virtual attention at each aligned layer against the teacher's maps."""
        a_mask, b_mask = batch["a_attention_mask"], batch["b_attention_mask"]
        heads = self.student.config.num_attention_heads
        s_maps, t_used = [], []
        for (layer, _), (t_xy, t_yx) in zip(self.layer_pairs, t_maps):
            s_xy = virtual_attention(qkv_a[(layer, "query")], qkv_b[(layer, "key")], b_mask, heads)
            s_yx = virtual_attention(qkv_b[(layer, "query")], qkv_a[(layer, "key")], a_mask, heads)
            if not self.same_heads:
                s_xy, s_yx, t_xy, t_yx = (m.mean(1, keepdim=True) for m in (s_xy, s_yx, t_xy, t_yx))
            s_maps.append((s_xy, s_yx))
            t_used.append((t_xy, t_yx))
        return virtual_attention_loss(s_maps, t_used)

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
        if self.use_mse:
            out["loss_mse"] = logit_mse_loss(logits, t_logits)
            loss = loss + self.w_logit * out["loss_mse"]
        elif self.use_kl:
            out["loss_kl"] = soft_kl_loss(logits, t_logits, self.temperature)
            loss = loss + self.w_logit * out["loss_kl"]
        out["loss"] = loss
        return out

    # --- cost ---
    def analytic_flops(self):
        """{"offline": per document, "online": per query given the cached document} at the configured lengths."""
        cfg, lq, ld, h = self.student.config, self.query_length, self.doc_length, self.student.config.hidden_size
        online = encoder_flops(cfg, lq) + self.predictor.flops(4 * h, self.labels)
        if self.model_type == "late_fusion":
            online += 3 * 2 * lq * ld * h  # scores and the two attention-weighted sums
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
