"""Base of every method: a trainable `student` (what DDP wraps and the optimizer sees) and a
frozen teacher kept out of parameters(), state_dict() and DDP."""
import torch
from torch import nn

from model.cls_only import cls_only_last_layer

STUDENT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
WORD_KEYS = ("word_ids", "word_lengths")  # word-level students (formatter/word_vocab.py, model/bilstm.py)


def unwrap(module):
    """The module inside a DDP / compile wrapper."""
    while hasattr(module, "module"):
        module = module.module
    return getattr(module, "_orig_mod", module)


def student_inputs(batch):
    return {k: batch[k] for k in STUDENT_KEYS + WORD_KEYS if k in batch}


def teacher_inputs(batch):
    """Teacher inputs: the teacher_* tensors when the formatter made separate ones, else the student's."""
    if "teacher_input_ids" in batch:
        return {k: batch["teacher_" + k] for k in STUDENT_KEYS if "teacher_" + k in batch}
    return student_inputs(batch)


class DistillModel(nn.Module):
    """forward(batch) -> {"loss", named loss parts, "logits"}; subclasses set self.student.

    Every registered parameter is trained: the student plus any heads a method adds beside it (e.g. a
    TinyBERT width projection). DDP wraps this whole module, so the frozen teacher, kept out of the
    registered modules, is never broadcast or reduced. Checkpoints hold "student" (what is exported)
    and "heads" (everything else registered)."""

    find_unused_parameters = False  # methods that skip trainable modules on some steps (Theseus) set True
    # what one training example costs, for the efficiency report (process/efficiency_report.py)
    student_forwards_per_train_example = 3  # forward + backward of the student
    teacher_runs_in_train_step = True  # unless cached logits serve it; False where the teacher is never run in training

    def __init__(self):
        super().__init__()
        self._frozen = {}

    @property
    def teacher(self):
        return self._frozen.get("teacher")

    def set_teacher(self, teacher):
        """Freeze the teacher: eval mode, no grads, not a registered submodule."""
        teacher.eval()
        teacher.requires_grad_(False)
        self._frozen["teacher"] = teacher

    def train(self, mode=True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        if self.teacher is not None:
            self.teacher.to(*args, **kwargs)
        return self

    caches_teacher_logits = False  # methods whose teacher term needs logits only (KD family) set True
    cls_only = False  # logits-only forwards run the last layer for [CLS] only (set by use_cls_only)
    hidden_reads_cls_only = False  # methods that read only position 0 of every hidden state (PKD) set True

    def use_cls_only(self, config):
        """[train] cls_only_last_layer, except under torch.compile (installing the layer's forward per call would recompile)."""
        self.cls_only = config.get("train", "cls_only_last_layer") and not config.get("train", "compile")

    def last_layer_cls_only(self, hidden):
        """Whether this forward may run the last layer for [CLS] only: logits only, or hidden states read at [CLS]."""
        return self.cls_only and (not hidden or self.hidden_reads_cls_only)

    def set_teacher_cache(self, logits):
        """(N, labels) teacher logits by training-example index (process/teacher_cache.py)."""
        self._frozen["teacher_logits"] = logits

    def teacher_forward(self, batch):
        """The teacher's logits, always computed (the cache's own source)."""
        with torch.inference_mode(), cls_only_last_layer(self.teacher, self.cls_only):
            return self.teacher(**teacher_inputs(batch)).logits

    def run_teacher(self, batch, hidden=False):
        """Teacher logits (and hidden states when asked) under inference_mode, cloned so autograd
        may save them for the student's backward. Training batches read cached logits when there are any."""
        cache = self._frozen.get("teacher_logits")
        if cache is not None and not hidden and self.training:
            return cache[batch["index"]].clone()
        with torch.inference_mode(), cls_only_last_layer(self.teacher, self.last_layer_cls_only(hidden)):
            out = self.teacher(**teacher_inputs(batch), output_hidden_states=hidden)
        if not hidden:
            return out.logits.clone()
        return out.logits.clone(), tuple(h.clone() for h in out.hidden_states)

    def student_model(self):
        return unwrap(self.student)

    def heads_state(self):
        """State of the registered modules other than the student (empty for most methods)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("student.")}

    def trainable_state(self):
        return {"student": self.student_model().state_dict(), "heads": self.heads_state()}

    def load_trainable(self, ckpt):
        """Restore student and heads from a checkpoint dict (heads strictly, when the method has any)."""
        self.student_model().load_state_dict(ckpt["student"])
        own = self.heads_state()
        if own or ckpt.get("heads"):
            missing = sorted(set(own) ^ set(ckpt.get("heads") or {}))
            if missing:
                raise KeyError(f"heads differ: {', '.join(missing[:5])}")
            self.load_state_dict({"student." + k: v for k, v in ckpt["student"].items()} | dict(ckpt["heads"]))

    def export(self, directory, tokenizer):
        """Save the student so plain `AutoModel.from_pretrained(directory)` loads it, tokenizer included."""
        self.student_model().save_pretrained(directory)
        tokenizer.save_pretrained(directory)
