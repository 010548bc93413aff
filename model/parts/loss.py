"""Every loss the methods use, as pure functions of tensors. Methods compose these; they never re-implement them."""
import math

import torch
import torch.nn.functional as F

from utils.labels import NO_LABEL


def soft_kl_loss(student_logits, teacher_logits, temperature=1.0):
    """Hinton KD: KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the batch.

    The T^2 factor keeps gradient magnitudes comparable across temperatures (Hinton et al. 2015).
    """
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return kl.mean() * t * t


def logit_mse_loss(student_logits, teacher_logits):
    """MSE between raw logits (Distilled-BiLSTM, Tang et al. 2019), mean over all elements."""
    return F.mse_loss(student_logits.float(), teacher_logits.float())


def hard_ce_loss(logits, labels):
    """Cross-entropy with the gold labels, averaged over the rows that have one (NO_LABEL rows are left out)."""
    return F.cross_entropy(logits.float(), labels, ignore_index=NO_LABEL)


def regression_mse_loss(scores, targets):
    """MSE for regression heads (one output): scores (N,1) or (N,) against float targets; NaN targets (rows
    without a score) are left out of the mean."""
    targets = targets.float().view(-1)
    keep = ~torch.isnan(targets)
    diff = torch.where(keep, scores.float().view(-1) - targets, 0.0)
    return diff.pow(2).sum() / keep.sum().clamp(min=1)


def task_loss(logits, labels):
    """Gold-label loss: MSE for a single-output head, cross-entropy otherwise; rows without a label
    (formatter/labels.py) are left out, so transfer-set rows in a batch cost the hard term nothing."""
    if logits.shape[-1] == 1:
        return regression_mse_loss(logits, labels)
    return hard_ce_loss(logits, labels)


def soft_loss(student_logits, teacher_logits, kind="kl", temperature=1.0):
    """The configured soft loss; a regression head always uses MSE (KL of one logit is meaningless)."""
    if kind == "mse" or student_logits.shape[-1] == 1:
        return logit_mse_loss(student_logits, teacher_logits)
    if kind == "kl":
        return soft_kl_loss(student_logits, teacher_logits, temperature)
    if kind == "ce":  # TinyBERT's prediction-layer loss (no T^2)
        return soft_cross_entropy(student_logits, teacher_logits, temperature)
    raise ValueError(f"unknown soft loss {kind!r}")


def soft_cross_entropy(student_logits, teacher_logits, temperature=1.0):
    """TinyBERT prediction-layer loss: -sum softmax(t/T) * log_softmax(s/T), mean over rows (no T^2)."""
    t = float(temperature)
    targets = F.softmax(teacher_logits.float() / t, dim=-1)
    return -(targets * F.log_softmax(student_logits.float() / t, dim=-1)).sum(-1).mean()


def _masked_mean(values, mask):
    """Mean of per-position values (..., L) over positions where mask (B, L) is 1."""
    mask = mask.to(values.dtype)
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(1)
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def hidden_mse_loss(student_hidden, teacher_hidden, mask=None):
    """MSE between hidden states (B, L, H), averaged over hidden units and the non-padded positions
    (TinyBERT hidden/embedding loss; project the student first when widths differ)."""
    per_position = (student_hidden.float() - teacher_hidden.float()).pow(2).mean(-1)
    return per_position.mean() if mask is None else _masked_mean(per_position, mask)


def attention_mse_loss(student_scores, teacher_scores, mask=None):
    """TinyBERT attention loss: MSE between attention score maps (B, heads, L, L), pre-softmax.
    Padded key/query positions (mask 0) are left out rather than compared at -inf."""
    sq = (student_scores.float() - teacher_scores.float()).pow(2)
    if mask is None:
        return sq.mean()
    pair = (mask[:, None, :, None] * mask[:, None, None, :]).to(sq.dtype).expand_as(sq)
    return (sq * pair).sum() / pair.sum().clamp(min=1)


def patience_loss(student_cls, teacher_cls):
    """BERT-PKD patient loss as its authors compute it (PKD-for-BERT-Model-Compression, src/KD_loss.py
    patience_loss with normalized_patience): F.mse_loss of the L2-normalised [CLS] states, i.e. a mean over the
    mapped layers, the batch AND the hidden units, so beta means the same at any width (their grid 10-1000).
    Inputs (B, H) or stacked (layers, B, H)."""
    return F.mse_loss(F.normalize(student_cls.float(), dim=-1), F.normalize(teacher_cls.float(), dim=-1))


def elementwise_kl_loss(student_logits, teacher_logits, temperature=1.0):
    """The BERT-PKD authors' KD term (src/KD_loss.py distillation_loss): nn.KLDivLoss(reduction='mean') * T^2,
    which divides the summed KL by batch x classes, not by the batch (Hinton's soft_kl_loss / classes)."""
    return soft_kl_loss(student_logits, teacher_logits, temperature) / student_logits.shape[-1]


def cosine_hidden_loss(student_hidden, teacher_hidden, mask=None):
    """DistilBERT cosine loss: 1 - cos(h_s, h_t) per position, averaged over non-padded positions."""
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)
    loss = 1.0 - cos
    return loss.mean() if mask is None else _masked_mean(loss, mask)


def relation_kl_loss(student_x, teacher_x, num_heads, mask=None):
    """MiniLMv2 self-attention relation loss for one of q/k/v.

    x: (B, L, H) projections; re-split into `num_heads` relation heads of size H/num_heads,
    R = softmax(x x^T / sqrt(d_r)) over keys (padded keys masked), KL(R_t || R_s) summed over keys,
    averaged over relation heads and non-padded query positions. Teacher and student widths may
    differ; only the number of relation heads must match.
    """
    def relations(x):
        b, length, width = x.shape
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_relation_heads {num_heads}")
        x = x.float().view(b, length, num_heads, width // num_heads).transpose(1, 2)
        scores = x @ x.transpose(-1, -2) / math.sqrt(width // num_heads)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        return F.log_softmax(scores, dim=-1)

    log_s, log_t = relations(student_x), relations(teacher_x)
    terms = log_t.exp() * (log_t - log_s)
    if mask is not None:  # masked keys have p_t = 0: their term is 0 (not 0 * (-inf - -inf))
        terms = torch.where(mask[:, None, None, :] == 0, torch.zeros_like(terms), terms)
    kl = terms.sum(-1)  # (B, heads, L)
    return kl.mean() if mask is None else _masked_mean(kl, mask)


# --- multilingual sentence-embedding distillation (Ding et al. 2022; model/parts/sentence_embedding.py) ---
def cos_sim_matrix(a, b):
    """(B, H), (C, H) -> (B, C) cosine similarities (the in-batch similarity matrix the MCL terms compare)."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def mcl_loss(student_src, student_tgt, teacher_src):
    """Ding et al.'s multilingual contrastive term (their released rec_bottle_mcl): MSE between the student's
    cross-lingual similarity matrix cos(s_src_i, s_tgt_j) and the teacher's cos(t_src_i, t_src_j), which serves as
    soft labels for every in-batch pair, negatives included."""
    return F.mse_loss(cos_sim_matrix(student_src, student_tgt), cos_sim_matrix(teacher_src, teacher_src))


def bool_sim_loss(student_src, student_tgt):
    """The paper's 'Bool' alternative to MCL: MSE between cos(s_src_i, s_tgt_j) and the identity (1 for the
    translation, 0 for every other in-batch sentence)."""
    sims = cos_sim_matrix(student_src, student_tgt)
    return F.mse_loss(sims, torch.eye(sims.shape[0], sims.shape[1], device=sims.device))


def in_batch_ce_loss(student_src, student_tgt, scale=20.0):
    """The paper's 'CE' alternative to MCL (InfoNCE): cross-entropy of scale * cos(s_src_i, s_tgt_j) over j,
    the translation j = i being the target."""
    sims = cos_sim_matrix(student_src, student_tgt) * scale
    return F.cross_entropy(sims, torch.arange(sims.shape[0], device=sims.device))


# --- text matching: VIRT (Li et al. 2022; model/virt.py) ---
def virtual_attention_loss(student_maps, teacher_maps):
    """VIRT's virtual-interaction loss, averaged as the VIRT authors' sbert_distill.py (get_attention_loss) does.

    student_maps / teacher_maps: one (x->y, y->x) pair per aligned layer, maps (B, heads, m, n) / (B, heads, n, m)
    over the texts' real tokens and their padding ([CLS] and the last [SEP] already dropped). Per layer: the MSE
    of x->y plus the MSE of y->x, each the mean over EVERY entry of the padded map (padded rows and columns count
    in the mean, as tf.losses.mean_squared_error over the padded tensors does); then the mean over layers."""
    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError(f"virtual_attention_loss: {len(student_maps)} student layers, {len(teacher_maps)} teacher layers")
    total = 0.0
    for (s_xy, s_yx), (t_xy, t_yx) in zip(student_maps, teacher_maps):
        total = total + F.mse_loss(s_xy.float(), t_xy.float()) + F.mse_loss(s_yx.float(), t_yx.float())
    return total / len(student_maps)


# --- language models: ELMo's biLM (Peters et al. 2018; model/elmo_lm.py) ---
def bilm_nll_losses(forward_logits, backward_logits, forward_targets, backward_targets):
    """ELMo's biLM objective (Peters et al. 2018, eq. 1) as its two negative log-likelihoods: the forward LM's
    next-word NLL and the backward LM's previous-word NLL, each the mean of -log softmax(logits)[target] over the real
    positions. Logits (N, V) are those of the real positions only (padding never enters), targets (N,) word ids; the
    loss the biLM minimises is their sum."""
    return (F.cross_entropy(forward_logits.float(), forward_targets),
            F.cross_entropy(backward_logits.float(), backward_targets))
