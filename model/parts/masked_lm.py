"""Shared pieces of the masked-LM methods (mlm_head, distilbert): the encoder/head split of an HF
ForMaskedLM model, the MLM head run only where it is needed, evaluation statistics at masked
positions, and carrying a pooler through ForMaskedLM exports.

Why run the head on selected positions only: its decoder is a hidden x vocab (384 x 30,522) matmul
per token, costlier than a small student's whole encoder; the losses only need masked positions."""
import torch
import torch.nn.functional as F

from model.base import student_inputs
from pretrained.loading import load_encoder
from model.parts.loss import hard_ce_loss
from utils.errors import ConfigError

IGNORE = -100  # label of every position that is not predicted (HF / F.cross_entropy convention)


def mlm_parts(model):
    """(encoder, head) of a ForMaskedLM model: BERT-style `cls`, RoBERTa/XLM-R-style `lm_head`."""
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if head is not None:
            return model.base_model, head
    raise ConfigError(f"{type(model).__name__}: no MLM head found (supported: BERT-style `cls`, RoBERTa-style `lm_head`)")


def head_parameters(model):
    """The MLM head's own parameters: its transform and output bias, not the decoder weight tied to the
    input embeddings (that stays with the encoder)."""
    tied = {id(p) for p in model.get_input_embeddings().parameters()}
    return [p for p in mlm_parts(model)[1].parameters() if id(p) not in tied]


def encode(model, inputs):
    """Last hidden states (B, L, H) of the encoder part."""
    return mlm_parts(model)[0](**inputs).last_hidden_state


def head_logits(model, hidden, positions):
    """MLM logits (N, V) at the selected positions (bool (B, L)), rows in row-major order."""
    return mlm_parts(model)[1](hidden[positions])


def masked_lm_stats(logits, labels, rows, batch_size):
    """Per-example [summed CE, correct predictions, predicted positions] (B, 3) from the head's logits
    (N, V) at the masked positions, their labels (N,) and example row of each (N,)."""
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    correct = (logits.argmax(-1) == labels).float()
    stats = torch.zeros(batch_size, 3, device=logits.device)
    stats.index_add_(0, rows, torch.stack([ce, correct, torch.ones_like(ce)], 1))
    return stats


def mlm_eval_output(model, batch):
    """Eval-mode output of an MLM method: "loss" = MLM CE, "logits" = per-example statistics for the
    `mlm` evaluator, "eval_labels" = per-example masked count (the batch's (B, L) labels do not concatenate)."""
    labels = batch["labels"]
    masked = labels != IGNORE
    logits = head_logits(model, encode(model, student_inputs(batch)), masked)
    rows = masked.nonzero()[:, 0]
    stats = masked_lm_stats(logits, labels[masked], rows, labels.shape[0])
    loss = hard_ce_loss(logits, labels[masked]) if len(rows) else logits.sum() * 0  # a batch with nothing masked
    return {"loss": loss, "logits": stats, "eval_labels": stats[:, 2].long()}


def source_pooler(path, key):
    """The pooler weights of a checkpoint as {'pooler.dense.weight': ..., ...}; {} when it has none.

    ForMaskedLM models have no pooler, but sequence classifiers fine-tuned from the export use one:
    carrying the source's pooler keeps that initialisation the same as the no-teacher twin's."""
    encoder, info = load_encoder(path, key, output_loading_info=True)
    pooler = getattr(encoder, "pooler", None)
    if pooler is None or any(k.startswith("pooler.") for k in info["missing_keys"]):
        return {}
    return {f"pooler.{k}": v.detach().clone() for k, v in pooler.state_dict().items()}


def save_with_pooler(model, pooler, directory, tokenizer):
    """save_pretrained of a ForMaskedLM model with the carried pooler added under its base-model prefix
    (AutoModelForMaskedLM ignores it; AutoModelForSequenceClassification / AutoModel load it)."""
    state = model.state_dict()
    state.update({f"{model.base_model_prefix}.{k}": v for k, v in pooler.items()})
    model.save_pretrained(directory, state_dict=state)
    tokenizer.save_pretrained(directory)


def check_same_vocabulary(config, method):
    """Token-by-token methods (DistilBERT logits/hidden states, MiniLMv2 relations) need the teacher to
    read exactly the student's token ids; fail before any work when the two tokenizers differ."""
    from pretrained.loading import load_tokenizer
    from pretrained.sources import same_vocab, student_tokenizer_source, teacher_tokenizer_source
    student = load_tokenizer(student_tokenizer_source(config))
    teacher = load_tokenizer(teacher_tokenizer_source(config), "[distill] teacher")
    if not same_vocab(student, teacher):
        raise ConfigError(f"[distill] teacher: its tokenizer's vocabulary differs from the student's; {method} compares "
                          "the two models token by token and needs one vocabulary")
