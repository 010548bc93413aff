"""tinybert: TinyBERT (Jiao et al. 2020), Transformer distillation in three stages ([tinybert] stage).

- general: the pretrained encoder (no task head) teaches an encoder student on unlabeled text
  (`text_lines`); the exported student initialises the task stages (`[model] pretrained`).
- intermediate (task stage 1): the fine-tuned teacher teaches the student's embedding output,
  hidden states and attention scores on the task's (augmented) text; labels are not used.
- prediction (task stage 2): soft cross-entropy to the teacher's logits at temperature T (the
  paper's L_pred, no T^2; MSE for regression), plus hard_weight * CE when asked. This is KD with
  the soft CE loss, so it reuses model/kd.py.

Transformer-layer loss (general and intermediate), summed over the mapped layers as in the paper
(lambda_m = 1): embedding_weight * MSE(E_s W_e, E_t) + hidden_weight * sum_m MSE(H_s^m W_h, H_t^g(m))
+ attention_weight * sum_m MSE(A_s^m, A_t^g(m)). A are the unnormalised (pre-softmax) attention
scores q k^T / sqrt(d) (plus the relative position bias an MPNet layer adds: the scores each model really
softmaxes), compared head by head, so the head counts must match. Padded positions are
left out of both MSEs (the released code instead zeroes the masked scores and averages over them).
g is the uniform map m -> m*N/M (model/parts/layer_map.py) or [tinybert] teacher_layers. The general stage
uses the same map and losses as the intermediate one: the released general_distill.py matches every
mapped layer's attention and the embedding + hidden states, as the paper describes.

Widths: when the student's hidden size differs from the teacher's, W_e and W_h are learned linear
maps (student -> teacher width, with bias as in the released code's fit_dense). The paper writes a
separate W_e for the embeddings and one W_h shared by all hidden layers; `share_projection = true`
uses one matrix for both, as the released code does. They are heads of this method (saved in
checkpoints as "heads", not exported with the student). Equal widths compare states directly.
"""
import torch
from torch import nn

from model.base import DistillModel, student_inputs, teacher_inputs
from model.parts.features import capture_qkv, layer_scores
from pretrained.loading import load_encoder, load_tokenizer, resolve_model_path
from model.kd import KD
from model.parts.layer_map import tinybert_layer_map
from model.parts.loss import attention_mse_loss, hidden_mse_loss
from model.parts.student import build_student
from pretrained.sources import same_vocab, student_tokenizer_source, teacher_tokenizer_source
from utils.errors import ConfigError

QK = ("query", "key")


class TinyBERT(KD):
    paper = "Jiao et al. 2020, TinyBERT: Distilling BERT for Natural Language Understanding"
    learns_without_labels = True  # the general and intermediate stages never read labels; the prediction stage is KD

    def __init__(self, config):
        self.stage = config.get("tinybert", "stage")
        if self.stage == "general":
            DistillModel.__init__(self)
            self._init_general(config)
        else:
            super().__init__(config)
        self.kind = "ce"  # prediction stage: soft cross-entropy, the paper's L_pred
        self.caches_teacher_logits = self.stage == "prediction"  # the other stages need the teacher's inner states
        self.weights = {part: config.get("tinybert", f"{part}_weight") for part in ("embedding", "hidden", "attention")}
        if self.stage != "prediction":
            if config.get("data", "valid_file"):  # an untrained task head's accuracy would pick the "best" student
                raise ConfigError(f"{config.source('data', 'valid_file')}: [data] valid_file: [tinybert] stage = "
                                  f"{self.stage} trains no task head, so there is nothing to validate; leave it empty "
                                  "(the final student is exported)")
            self._init_transformer_distill(config)

    def _init_general(self, config):
        """Encoder teacher and student: unlabeled text has no task head to train or evaluate."""
        path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
        self.set_teacher(load_encoder(path, "[distill] teacher"))
        self.student = build_student(config, None, self.teacher)

    def _init_transformer_distill(self, config):
        if not same_vocab(load_tokenizer(student_tokenizer_source(config)),
                          load_tokenizer(teacher_tokenizer_source(config), "[distill] teacher")):
            raise ConfigError("[distill] teacher: TinyBERT compares states token by token, so teacher and student must "
                              "share one tokenizer; their vocabularies differ")
        t_config, s_config = self.teacher.config, self.student_model().config
        self.layer_map = tinybert_layer_map(t_config.num_hidden_layers, s_config.num_hidden_layers,
                                            config.get("tinybert", "teacher_layers"))
        self.num_heads = t_config.num_attention_heads
        if self.weights["attention"] and s_config.num_attention_heads != self.num_heads:
            raise ConfigError(f"[student] num_attention_heads = {s_config.num_attention_heads}: TinyBERT's attention loss "
                              f"compares heads one to one and the teacher has {self.num_heads}; use {self.num_heads} heads "
                              "or set [tinybert] attention_weight = 0")
        if not any(self.weights.values()):
            raise ConfigError(f"[tinybert] stage = {self.stage}: embedding_weight, hidden_weight and attention_weight "
                              "are all 0; nothing to distil")
        width_s, width_t = s_config.hidden_size, t_config.hidden_size
        if width_s != width_t:
            if config.get("tinybert", "share_projection"):
                if self.weights["embedding"] or self.weights["hidden"]:
                    self.proj_hidden = nn.Linear(width_s, width_t)
                    self.proj_embedding = self.proj_hidden
            else:
                if self.weights["hidden"]:
                    self.proj_hidden = nn.Linear(width_s, width_t)
                if self.weights["embedding"]:
                    self.proj_embedding = nn.Linear(width_s, width_t)
        # the student's pooler/classifier get no gradient in these stages
        self.find_unused_parameters = True

    def project(self, name, states):
        proj = getattr(self, f"proj_{name}", None)
        return states if proj is None else proj(states)

    def forward(self, batch):
        if self.stage == "prediction" or (not self.training and self.stage == "intermediate"):
            return super().forward(batch)  # KD with soft CE; evaluation reads the task head's logits
        return self.transformer_distill(batch)

    def run_teacher_features(self, batch, layers):
        """Teacher hidden states and attention scores of `layers`, under inference_mode, cloned for autograd."""
        with torch.inference_mode(), capture_qkv(self.teacher, layers, QK, "[tinybert] teacher_layers") as store:
            out = self.teacher(**teacher_inputs(batch), output_hidden_states=True)
            scores = [layer_scores(store, t, self.num_heads) for t in layers]
        return [h.clone() for h in out.hidden_states], [s.clone() for s in scores]

    def transformer_distill(self, batch):
        # scores stay unmasked: attention_mse_loss leaves padded (query, key) pairs out (a finfo.min fill
        # would overflow once squared when teacher and student dtypes differ)
        mask = batch["attention_mask"]
        use_att = bool(self.weights["attention"])
        student = self.student_model()
        with capture_qkv(student, list(range(len(self.layer_map))) if use_att else [], QK, "[student] num_layers") as store:
            out_s = self.student(**student_inputs(batch), output_hidden_states=True)
            s_scores = [layer_scores(store, s, self.num_heads) for s in range(len(self.layer_map))] if use_att else []
        t_hidden, t_scores = self.run_teacher_features(batch, self.layer_map if use_att else [])
        s_hidden = out_s.hidden_states
        out = {}
        if not self.training and hasattr(out_s, "logits"):
            out["logits"] = out_s.logits
        loss = 0.0
        if self.weights["embedding"]:
            out["loss_emb"] = hidden_mse_loss(self.project("embedding", s_hidden[0]), t_hidden[0], mask)
            loss = loss + self.weights["embedding"] * out["loss_emb"]
        if self.weights["hidden"]:
            out["loss_hidden"] = sum(hidden_mse_loss(self.project("hidden", s_hidden[s + 1]), t_hidden[t + 1], mask)
                                     for s, t in enumerate(self.layer_map))
            loss = loss + self.weights["hidden"] * out["loss_hidden"]
        if use_att:
            out["loss_att"] = sum(attention_mse_loss(s, t, mask) for s, t in zip(s_scores, t_scores))
            loss = loss + self.weights["attention"] * out["loss_att"]
        out["loss"] = loss
        return out
