"""Shared pieces of the text-matching methods (bert_bipartition, virt, dc_bert): mean pooling over valid
tokens, the teacher's pooled logits and cross attention, pair features, tower inputs, and exporting method heads."""
import json
from pathlib import Path

import torch

from model.parts.features import attention_scores, capture_qkv
from pretrained.loading import load_classifier, resolve_model_path
from utils.errors import ConfigError

HEAD_FILE = "match_head.safetensors"


def mean_pool(hidden, mask):
    """Mean of token states (B, L, H) over positions whose mask (B, L) is 1 (PAD positions left out)."""
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def tower_inputs(batch, side):
    """input_ids / attention_mask of the query (side 'a') or document (side 'b') tower."""
    return {"input_ids": batch[f"{side}_input_ids"], "attention_mask": batch[f"{side}_attention_mask"]}


def joint_inputs(batch):
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def drop_pooler(model):
    """Mean-pooled tower encoders (BertModel) never use BERT's [CLS] pooler: removing it keeps DDP free of
    unused parameters and FLOPs counts honest (a reload re-creates it, unused)."""
    base = getattr(model, "base_model", model)
    if getattr(base, "pooler", None) is not None:
        base.pooler = None
    return model


def pooled_logits(model, inputs, pooling, output_hidden_states=False):
    """(logits, outputs) of a BERT-family sequence classifier under the matching pooling: mean over valid
    tokens (VIRT's bipartition teacher) through its dropout + classifier, or its own [CLS] head."""
    if pooling == "cls":
        out = model(**inputs, output_hidden_states=output_hidden_states)
        return out.logits, out
    out = model.base_model(**inputs, output_hidden_states=output_hidden_states)
    return model.classifier(model.dropout(mean_pool(out.last_hidden_state, inputs["attention_mask"]))), out


def check_bert_classifier(model, key):
    if not (hasattr(model, "base_model") and isinstance(getattr(model, "classifier", None), torch.nn.Linear)
            and hasattr(model, "dropout")):
        raise ConfigError(f"{key}: matching needs a BERT-family classifier (base_model, dropout, linear classifier); "
                          f"got {type(model).__name__}")


def load_match_teacher(config, labels):
    """The cross-encoder teacher and its pooling ('mean' for a bert_bipartition export, else 'cls')."""
    path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
    teacher = load_classifier(path, "[distill] teacher")
    check_bert_classifier(teacher, "[distill] teacher")
    if teacher.config.num_labels != labels:
        raise ConfigError(f"[distill] teacher: {path} has {teacher.config.num_labels} labels, the data has {labels}")
    return teacher, getattr(teacher.config, "pooling_strategy", "cls")


def teacher_cross_maps(query, key, mask, heads, query_length, renormalize=True):
    """(x->y, y->x) attention maps between the REAL tokens of the bipartition input (B, L, H) projections, as the VIRT
    authors' sbert_distill.py (get_attention_loss) slices them: query rows 1..Lq-2 and document columns Lq..L-2, and
    the reverse, i.e. [CLS], the query's [SEP] and the last [SEP] dropped (padding kept):
    (B, heads, Lq-2, Ld-2) / (B, heads, Ld-2, Lq-2).
    renormalize (theirs): softmax of the scaled scores over the other text's tokens with -10000 added at its padding
    (each row a distribution, as the student's virtual attention is); else the submatrix of the full attention map."""
    x, y = slice(1, query_length - 1), slice(query_length, mask.shape[1] - 1)
    if renormalize:
        return (additive_masked_softmax(attention_scores(query[:, x], key[:, y], heads), mask[:, y]),
                additive_masked_softmax(attention_scores(query[:, y], key[:, x], heads), mask[:, x]))
    full = attention_scores(query, key, heads, mask).softmax(-1)
    return full[:, :, x, y], full[:, :, y, x]


def teacher_cross_attention(teacher, pooling, inputs, layers, query_length, renormalize=True):
    """(teacher logits, maps): per mapped teacher layer, teacher_cross_maps of its query / key projections."""
    heads = teacher.config.num_attention_heads
    with torch.inference_mode(), capture_qkv(teacher, layers, ("query", "key"), "[distill] teacher layer") as store:
        logits = pooled_logits(teacher, inputs, pooling)[0]
        maps = [teacher_cross_maps(store[(layer, "query")], store[(layer, "key")], inputs["attention_mask"], heads,
                                   query_length, renormalize) for layer in layers]
    # cloned outside inference_mode: plain tensors autograd may save for the student's backward
    return logits.clone(), [(xy.clone(), yx.clone()) for xy, yx in maps]


def export_heads(method, directory, info):
    """Save the method's heads (everything trainable beside the exported encoder) next to the HF export, so
    the matching model is complete on disk: match_head.safetensors + match_head.json (what built them)."""
    from safetensors.torch import save_file
    state = {k: v.detach().contiguous().cpu() for k, v in method.heads_state().items() if torch.is_tensor(v)}
    if state:
        save_file(state, str(Path(directory) / HEAD_FILE))
    (Path(directory) / "match_head.json").write_text(json.dumps(info, indent=1) + "\n")


def check_positions(model, length, key):
    """The joint (or interaction) sequence must fit the model's position table."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and length > limit:
        raise ConfigError(f"[match] max_seq_length_query + max_seq_length_doc - 1 = {length}: {key} has only {limit} positions")


def masked_softmax(scores, key_mask):
    """softmax over the last axis with keys whose mask (B, n) is 0 left out."""
    return scores.masked_fill(key_mask[:, None, :] == 0, torch.finfo(scores.dtype).min).softmax(-1)


def additive_masked_softmax(scores, key_mask):
    """softmax over the last axis after adding -10000 at keys whose mask (B, n) is 0: BERT's masking, as the VIRT
    authors' code masks its attention maps (a row with no valid key stays a softmax of its raw scores)."""
    adder = (1.0 - key_mask.to(scores.dtype)) * -10000.0
    return (scores + adder.view(adder.shape[0], *([1] * (scores.dim() - 2)), adder.shape[-1])).softmax(-1)


def pair_features(u, v):
    """SBERT's classifier input [u, v, |u - v|, u * v] (Reimers & Gurevych 2019)."""
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


def virt_pair_features(u, v):
    """The VIRT authors' classifier input [u, v, |u - v|, max(u, v)^2] (sbert_distill.py, newly_late_interaction)."""
    return torch.cat([u, v, (u - v).abs(), torch.maximum(u, v).square()], dim=-1)


def teacher_logits(teacher, pooling, inputs):
    with torch.inference_mode():
        logits = pooled_logits(teacher, inputs, pooling)[0]
    return logits.clone()  # outside inference_mode: a plain tensor autograd may save
