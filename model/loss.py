"""Every loss the methods use, as pure functions of tensors. Methods compose these; they never re-implement them."""
import torch
import torch.nn.functional as F


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
    """Cross-entropy with the gold labels."""
    return F.cross_entropy(logits.float(), labels)


def regression_mse_loss(scores, targets):
    """MSE for regression heads (one output): scores (N,1) or (N,) against float targets."""
    return F.mse_loss(scores.float().view(-1), targets.float().view(-1))


def task_loss(logits, labels):
    """Gold-label loss: MSE for a single-output head, cross-entropy otherwise."""
    if logits.shape[-1] == 1:
        return regression_mse_loss(logits, labels)
    return hard_ce_loss(logits, labels)


def soft_loss(student_logits, teacher_logits, kind="kl", temperature=1.0):
    """The configured soft loss; a regression head always uses MSE (KL of one logit is meaningless)."""
    if kind == "mse" or student_logits.shape[-1] == 1:
        return logit_mse_loss(student_logits, teacher_logits)
    if kind == "kl":
        return soft_kl_loss(student_logits, teacher_logits, temperature)
    raise ValueError(f"unknown soft loss {kind!r}")
