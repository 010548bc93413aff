"""A batch's gold labels as one tensor. Transfer-set rows ([data] transfer_file) have none: they get a fill the
task loss leaves out (NO_LABEL for classes, NaN for regression scores), so a batch mixing both still trains the
hard term on its labeled rows and the teacher's soft term on all of them."""
import torch

from utils.labels import NO_LABEL


def label_tensor(labels):
    """(B,) long class ids or float scores; None when no row of the batch has a label."""
    present = [label for label in labels if label is not None]
    if not present:
        return None
    if isinstance(present[0], float):
        return torch.tensor([float("nan") if label is None else label for label in labels], dtype=torch.float)
    return torch.tensor([NO_LABEL if label is None else label for label in labels], dtype=torch.long)


def add_labels(batch, examples):
    """Put `labels` in the batch unless no example has one (evaluation of unlabeled text, general distillation)."""
    labels = label_tensor([ex["label"] for ex in examples])
    if labels is not None:
        batch["labels"] = labels
