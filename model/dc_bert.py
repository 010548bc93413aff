"""dc_bert: DC-BERT (Zhang, Nie, Geng, Ramamurthy, Song, Jiang 2020, "DC-BERT: Decoupling Question and Document for
Efficient Contextual Encoding", SIGIR 2020), with the configuration of the XiaoIce distillation framework's
models/dc_bert.py (class DCBertForSequenceClassification; its dc_bert_model_config keys last_layer_model_type and
copy_from_bert_layer_num, -1 = the last layer). We found no code released with the paper, so this file follows
the paper's design (dual encoders, Transformer interaction layers with global position and type embeddings, a
binary classifier, cross-entropy) and that framework's module for the details the paper leaves open.

Model (last_layer_model_type = transformer):
- two separate full-depth encoders with their own parameters: the online question encoder (`self.student`) and the
  offline document encoder (`self.document_encoder`); the document side does not see the question, so
  encode_docs caches its token states and score runs only the question side and the head (process/doc_cache.py);
- both start as copies of one source model, chosen by [student] init_from: `teacher` = the fine-tuned
  cross-encoder [distill] teacher (the framework's way: "teacher and student trained together" starts from the
  fine-tuned model), `pretrained` = [model] pretrained (the paper's way: pretrained BERT). [student] num_layers /
  layer_select / layer_list may pick a shallower encoder (default: every source layer);
- on top, K = num_interaction_layers NEW transformer layers over the concatenation [question states ; document
  states] (Lq + Ld tokens): to that sequence we add global position embeddings (positions 0..Lq+Ld-1) and type
  embeddings (0 = question, 1 = document), both copied from the source's embedding tables, then LayerNorm (a copy
  of the source's embedding LayerNorm) and dropout, as BERT's embedding layer does ([dc_bert] embedding_layer_norm;
  false = the plain sum, as the framework's code). The layers are copies of source layers: the top one from
  copy_from_bert_layer_num (-1 = the last; the framework copies that one layer), the others the layers below it;
- classifier ([dc_bert] classifier_input): cls_pair = tanh(W [h_0 ; h_Lq] + b), the interaction output at the
  question's [CLS] (position 0) and the document's [CLS] (position Lq), then dropout and a linear classifier (the
  framework's question-document pooler); cls = the state at position 0 alone, dropout, linear classifier. Pooler
  and classifier are new (normal(0, initializer_range) weights, zero bias), as in the framework.
last_layer_model_type = linear (the paper's no-interaction ablation, the framework's other option): no interaction
layers; the two encoders' [CLS] states u, v -> tanh(W [u, v, u - v] + b) -> dropout -> classifier (the document
cache holds v only).

Loss: cross-entropy on the gold labels ([model] task loss: MSE for regression), as the paper trains its
retriever. [dc_bert] distill = true is KD-Worker's extension, NOT the paper's: the frozen cross-encoder
[distill] teacher runs beside the student on every batch and the loss becomes hard_weight * CE + soft_weight *
soft loss to its logits ([distill] kd_loss, temperature). With distill = false and init_from = pretrained the teacher
is never loaded, even when [distill] teacher is given; with init_from = teacher it is read for weights, then dropped.

FLOPs (analytic_flops): offline = the document encoder over Ld tokens; online = the question encoder over Lq tokens
+ K interaction layers over Lq + Ld tokens + pooler + classifier (linear: the pair projection + classifier).

Export: the student folder is the question encoder (plain AutoModel, the online part) with the tokenizer;
document_encoder/ inside it holds the document encoder (AutoModel + tokenizer, the offline indexer);
match_head.safetensors holds the online head (interaction layers, global position / type embeddings and their
LayerNorm, pooler, classifier) and match_head.json what built it.

Where we depart from the paper and the framework, and why:
- LayerNorm + dropout over the summed embeddings (switchable): the towers' states leave a LayerNorm, and adding
  BERT's position / type tables unnormalised shifts the scale the copied layer was trained on;
- the interaction layers come from the same source model as the encoders (the framework copies them from its
  document encoder's source as well) and may be more than one (the paper's K; the framework has one);
- classifier_input: the paper's classifier reads the interaction output; cls_pair (default) is the framework's
  reading of it, both [CLS] states through a tanh pooler; cls is BERT's usual single-[CLS] input;
- the towers' inputs are the bipartition layout ([CLS] text [PAD].. [SEP], docs/MATCHING.md), fixed lengths so
  that the cached and the direct path give the same logits; padded positions are masked in the interaction."""
import copy
from pathlib import Path

import torch
from torch import nn

from model.base import DistillModel
from model.parts.features import encoder_layers
from model.parts.layer_map import select_layers
from model.parts.loss import soft_loss, task_loss
from model.parts.match_common import (drop_pooler, export_heads, joint_inputs, load_match_teacher, teacher_logits,
                                      tower_inputs)
from model.parts.student import cut_layers
from model.theseus import extended_mask
from model.virt import require_bipartition
from pretrained.loading import load_encoder, resolve_model_path
from utils.errors import ConfigError
from utils.tower_lengths import tower_lengths
from efficiency.flops import dummy_tower, encoder_flops, encoder_layer_flops, linear_flops

DOC_FOLDER = "document_encoder"


def _at(config, section, key):
    """'file:line: ' where a key was set, '' for a default."""
    where = config.source(section, key)
    return "" if where == "default" else f"{where}: "


def _new_linear(fan_in, fan_out, std):
    layer = nn.Linear(fan_in, fan_out)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class _OnlineHead:
    """What export_heads writes: the online head's state, without the document encoder (exported on its own)."""

    def __init__(self, state):
        self.state = state

    def heads_state(self):
        return self.state


class DCBert(DistillModel):
    paper = "Zhang et al. 2020, DC-BERT: Decoupling Question and Document for Efficient Contextual Encoding"
    two_tower = True

    def __init__(self, config):
        super().__init__()
        require_bipartition(config, "dc_bert")
        labels = config.get("model", "num_labels")
        get = lambda key: config.get("dc_bert", key)
        self.kind, self.classifier_input = get("last_layer_model_type"), get("classifier_input")
        self.embedding_norm, self.distill = get("embedding_layer_norm"), get("distill")
        self.query_length, self.doc_length = tower_lengths(config)
        how = config.get("student", "init_from")
        teacher = None
        if self.distill or how == "teacher":
            if not config.get("distill", "teacher"):
                need = "[dc_bert] distill = true" if self.distill else "[student] init_from = teacher"
                raise ConfigError(f"[distill] teacher: empty, but {need} needs the fine-tuned cross-encoder "
                                  "(e.g. a bert_bipartition run directory)")
            teacher, self.teacher_pooling = load_match_teacher(config, labels)
        if how == "teacher":
            source, name = teacher.base_model, "[distill] teacher"
        elif how == "pretrained":
            source, name = load_encoder(resolve_model_path(config.get("model", "pretrained")), "[model] pretrained"), "[model] pretrained"
            source = getattr(source, "base_model", source)
        else:
            raise ConfigError(f"{_at(config, 'student', 'init_from')}[student] init_from = {how}: dc_bert copies its "
                              "encoders and interaction layers from a trained model; use teacher or pretrained")
        cfg = source.config
        n, width = cfg.num_hidden_layers, cfg.hidden_size
        length = self.query_length + self.doc_length
        limit = getattr(cfg, "max_position_embeddings", None)
        if self.kind == "transformer" and limit is not None and length > limit:
            raise ConfigError(f"[match] max_seq_length_query + max_seq_length_doc = {length}: the interaction layers' "
                              f"global positions come from {name}, which has only {limit}")
        if self.distill:
            cross = self.query_length + self.doc_length - 1
            t_limit = getattr(teacher.config, "max_position_embeddings", None)
            if t_limit is not None and cross > t_limit:
                raise ConfigError(f"[match] max_seq_length_query + max_seq_length_doc - 1 = {cross}: "
                                  f"[distill] teacher has only {t_limit} positions")
            self.set_teacher(teacher)
        self.teacher_runs_in_train_step = self.distill

        keep = select_layers(n, config.get("student", "num_layers"), config.get("student", "layer_select"),
                             config.get("student", "layer_list"))
        self.document_encoder = drop_pooler(cut_layers(source, keep))  # offline
        self.student = drop_pooler(cut_layers(source, keep))  # online question encoder: its own copy
        self.depth = len(keep)

        k = get("num_interaction_layers") if self.kind == "transformer" else 0
        top = get("copy_from_bert_layer_num")
        if self.kind == "transformer":
            if not 1 <= k <= n:
                raise ConfigError(f"{_at(config, 'dc_bert', 'num_interaction_layers')}[dc_bert] num_interaction_layers "
                                  f"= {k}: must be 1..{n} ({name} has {n} layers to copy them from)")
            if not -n <= top < n:
                raise ConfigError(f"{_at(config, 'dc_bert', 'copy_from_bert_layer_num')}[dc_bert] copy_from_bert_layer_num"
                                  f" = {top}: {name} has layers 0..{n - 1} (-1 = the last)")
            top %= n
            if top - k + 1 < 0:
                raise ConfigError(f"{_at(config, 'dc_bert', 'copy_from_bert_layer_num')}[dc_bert] copy_from_bert_layer_num"
                                  f" = {top}: {k} interaction layers are copied from layers {top - k + 1}..{top} of {name}")
            self.interaction = nn.ModuleList(copy.deepcopy(layer) for layer in encoder_layers(source)[top - k + 1:top + 1])
            embeddings = source.embeddings
            self.position = copy.deepcopy(embeddings.position_embeddings)  # global positions 0..Lq+Ld-1
            self.segment = nn.Embedding(2, width)  # type embeddings: 0 = question, 1 = document
            types = getattr(embeddings, "token_type_embeddings", None)
            with torch.no_grad():
                if types is None:
                    self.segment.weight.zero_()
                else:
                    self.segment.weight.copy_(types.weight[:2] if types.weight.shape[0] >= 2 else types.weight[:1].expand(2, -1))
            if self.embedding_norm:
                self.norm = copy.deepcopy(embeddings.LayerNorm)
            if self.classifier_input == "cls_pair":
                self.pooler = _new_linear(2 * width, width, cfg.initializer_range)
        else:
            self.pair = _new_linear(3 * width, width, cfg.initializer_range)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.classifier = _new_linear(width, labels, cfg.initializer_range)
        self.labels, self.interaction_layers, self.copied_from = labels, k, list(range(top - k + 1, top + 1)) if k else []
        self.soft_weight, self.hard_weight = config.get("distill", "soft_weight"), config.get("distill", "hard_weight")
        self.soft_kind, self.temperature = config.get("distill", "kd_loss"), config.get("distill", "temperature")

    # --- the two encoders ---
    def encode_question(self, a_inputs):
        """Online: the question encoder's token states (B, Lq, H)."""
        return self.student(**a_inputs).last_hidden_state

    def encode_docs(self, b_inputs):
        """Offline: what the document encoder contributes, computed without the question (cacheable)."""
        states = self.document_encoder(**b_inputs).last_hidden_state
        if self.kind == "linear":
            return {"cls": states[:, 0]}
        return {"states": states, "mask": b_inputs["attention_mask"]}

    def score(self, a_inputs, docs):
        """Logits from the question encoder and cached document entries (encode_docs)."""
        return self.head(self.encode_question(a_inputs), a_inputs["attention_mask"], docs)

    # --- the online head ---
    def interact(self, a_states, a_mask, b_states, b_mask):
        """The interaction layers' output (B, Lq + Ld, H) over the concatenated token states."""
        hidden = torch.cat([a_states, b_states], dim=1)
        lq = a_states.shape[1]
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        hidden = hidden + self.position(positions)[None] + self.segment((positions >= lq).long())[None]
        if self.embedding_norm:
            hidden = self.dropout(self.norm(hidden))
        mask = torch.cat([a_mask, b_mask], dim=1)
        layer_mask = extended_mask(self.interaction[0].attention.self.config, hidden, mask)
        for layer in self.interaction:
            hidden = layer(hidden, layer_mask)
        return hidden

    def head(self, a_states, a_mask, docs):
        if self.kind == "linear":
            u, v = a_states[:, 0], docs["cls"]
            return self.classifier(self.dropout(torch.tanh(self.pair(torch.cat([u, v, u - v], dim=-1)))))
        hidden = self.interact(a_states, a_mask, docs["states"], docs["mask"])
        if self.classifier_input == "cls_pair":
            pooled = torch.tanh(self.pooler(torch.cat([hidden[:, 0], hidden[:, a_states.shape[1]]], dim=-1)))
        else:
            pooled = hidden[:, 0]
        return self.classifier(self.dropout(pooled))

    def forward(self, batch):
        a_in, b_in = tower_inputs(batch, "a"), tower_inputs(batch, "b")
        logits = self.head(self.encode_question(a_in), a_in["attention_mask"], self.encode_docs(b_in))
        out = {"logits": logits}
        if "labels" in batch:
            out["loss_hard"] = task_loss(logits, batch["labels"])
        if not self.training or not self.distill:
            if "labels" in batch:
                out["loss"] = out["loss_hard"]
            elif self.training:
                raise ConfigError("[model] model_name = dc_bert: training needs gold labels (or [dc_bert] distill = true); "
                                  "the training data has none")
            return out
        t_logits = teacher_logits(self.teacher, self.teacher_pooling, joint_inputs(batch))
        out["loss_kd"] = soft_loss(logits, t_logits, self.soft_kind, self.temperature)
        loss = self.soft_weight * out["loss_kd"]
        if "labels" in batch and self.hard_weight:
            loss = loss + self.hard_weight * out["loss_hard"]
        out["loss"] = loss
        return out

    # --- cost ---
    def analytic_flops(self):
        """{"offline": per document, "online": per query given the cached document} at the configured lengths."""
        cfg, lq, ld, h = self.student.config, self.query_length, self.doc_length, self.student.config.hidden_size
        online = encoder_flops(cfg, lq, self.depth) + linear_flops(1, h, self.labels)
        if self.kind == "transformer":
            inner = self.interaction[0].intermediate.dense.out_features
            online += self.interaction_layers * encoder_layer_flops(lq + ld, h, inner)
            if self.classifier_input == "cls_pair":
                online += linear_flops(1, 2 * h, h)
        else:
            online += linear_flops(1, 3 * h, h)
        return {"offline": encoder_flops(self.document_encoder.config, ld, self.depth), "online": online}

    def flops_probes(self):
        docs, query = dummy_tower(self.doc_length), dummy_tower(self.query_length)
        cached = self.encode_docs(docs)
        return {"offline": lambda: self.encode_docs(docs), "online": lambda: self.score(query, cached)}

    # --- export ---
    def export(self, directory, tokenizer):
        """<directory>: the question encoder (online); <directory>/document_encoder: the document encoder (offline);
        match_head.safetensors / .json: the online head (everything else)."""
        super().export(directory, tokenizer)
        docs = Path(directory) / DOC_FOLDER
        self.document_encoder.save_pretrained(docs)
        tokenizer.save_pretrained(docs)
        head = {k: v for k, v in self.heads_state().items() if not k.startswith(DOC_FOLDER + ".")}
        export_heads(_OnlineHead(head), directory, {
            "model_name": "dc_bert", "last_layer_model_type": self.kind, "classifier_input": self.classifier_input,
            "embedding_layer_norm": self.embedding_norm, "num_interaction_layers": self.interaction_layers,
            "interaction_copied_from_layers": self.copied_from, "labels": self.labels,
            "max_seq_length_query": self.query_length, "max_seq_length_doc": self.doc_length,
            "question_encoder": ".", "document_encoder": DOC_FOLDER})
