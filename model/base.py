"""The method contract: every member the loop (process/) reads of a method, declared here once with its default
and meaning. A method is a `DistillModel` in its own file under model/; process/ reads it only through these
members, never through getattr with a default.

forward(batch) returns a dict; the keys the loop and the evaluators read:
  "loss"          scalar to minimise (training; evaluation may report it too)
  "loss_<part>"   named parts of the loss, logged as they are (e.g. loss_kd, loss_hard, loss_hidden, loss_att)
  "logits"        what evaluators score: class logits, a regression value, or (sentence embeddings) the
                  concatenated embeddings the multilingual evaluator splits
  "eval_labels"   (optional) what the evaluator compares with instead of batch["labels"] (masked-LM methods:
                  one label per example, not the (B, L) masked ids)
Trainable state: `self.student` (what is exported) plus any heads a method registers beside it; the frozen teacher
is kept out of parameters(), state_dict() and DDP."""
import torch
from torch import nn

from efficiency.cls_only import cls_only_last_layer
from efficiency.counts import count_params

STUDENT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
WORD_KEYS = ("word_ids", "word_lengths", "b_word_ids", "b_word_lengths")  # word-level students; b_* = a pair's second text


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
    paper = None  # the method's paper ("Authors year, Title"), named by the model card; None: no paper (fine-tuning, helpers)

    # --- what the loop reads (process/), each with its default ------------------------------------------------
    find_unused_parameters = False  # DDP: True where some trainable modules skip steps (Theseus' replaced blocks)
    caches_teacher_logits = False  # the teacher term needs logits only: the loop may fill a teacher-logit cache
    uses_hidden = False  # training reads the teacher's hidden states (no logit cache; efficiency report counts it)
    learns_without_labels = False  # rows without gold labels (a transfer set) still train it (the teacher labels them)
    hidden_reads_cls_only = False  # the hidden states it reads are position 0 only (PKD), so the last layer may be [CLS]-only
    two_tower = False  # text matching with separate towers: the test also scores through cached documents
    reads_word_ids = False  # a word-level student: init builds the word vocabulary once and passes it as `word_vocab`
    uses_teacher_table = False  # training reads teacher sentence embeddings from a table the loop builds first
    # what one training example costs, for the efficiency report (efficiency/report.py)
    student_forwards_per_train_example = 3  # forward + backward of the student
    teacher_runs_in_train_step = True  # unless cached logits serve it; False where the teacher is never run in training
    cls_only = False  # logits-only forwards run the last layer for [CLS] only (set by use_cls_only)

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

    def use_cls_only(self, config):
        """[train] cls_only_last_layer, except under torch.compile (installing the layer's forward per call would recompile)."""
        self.cls_only = config.get("train", "cls_only_last_layer") and not config.get("train", "compile")

    def last_layer_cls_only(self, hidden):
        """Whether this forward may run the last layer for [CLS] only: logits only, or hidden states read at [CLS]."""
        return self.cls_only and (not hidden or self.hidden_reads_cls_only)

    def set_teacher_cache(self, logits):
        """(N, labels) teacher logits by training-example index (process/teacher_cache.py)."""
        self._frozen["teacher_logits"] = logits

    def frozen_modules(self):
        """The frozen modules a method runs (teacher, embedding teacher, ...): counted by the FLOPs report, never trained."""
        return [m for m in self._frozen.values() if isinstance(m, nn.Module)]

    @property
    def teacher_logits_cached(self):
        """Whether training batches read the teacher's logits from the cache instead of running it."""
        return self._frozen.get("teacher_logits") is not None

    # --- teacher sentence-embedding table (uses_teacher_table methods; process/teacher_cache.py builds it) -------
    def teacher_table_rows(self, dataset):
        """Row ids of dataset.texts whose teacher embedding the loss reads."""
        raise NotImplementedError(f"{type(self).__name__} reads no teacher table")

    def teacher_table_fingerprint(self):
        """A string naming everything that changes the table's content besides the texts (teacher files, settings)."""
        raise NotImplementedError(f"{type(self).__name__} reads no teacher table")

    def embed_texts(self, texts):
        """(n, H) teacher embeddings of raw texts: the table's only source."""
        raise NotImplementedError(f"{type(self).__name__} reads no teacher table")

    def set_teacher_table(self, table):
        """(len(dataset.texts), H) teacher embeddings by text id, rows the loss never reads left zero."""
        self._frozen["teacher_table"] = table

    # --- evaluation and reporting hooks ----------------------------------------------------------------------
    def analytic_flops(self):
        """FLOPs per query split offline / online (text-matching methods, efficiency/flops.py), or None."""
        return None

    def encode_docs(self, inputs):
        """two_tower methods: the document tower's cacheable output for a batch of documents."""
        raise NotImplementedError(f"{type(self).__name__} is not a two-tower model")

    def score(self, query_inputs, docs):
        """two_tower methods: logits of queries against their documents' cached outputs."""
        raise NotImplementedError(f"{type(self).__name__} is not a two-tower model")

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

    def deployed_params(self):
        """Parameters of what the export ships: the student, plus any head that ships with it (a sentence student's
        projection to its teacher's width); training-only heads (TinyBERT's width maps) are not counted."""
        return count_params(self.student_model())

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

    def set_label_names(self, names):
        """The task's label names in id order, written into the student's HF config (id2label / label2id), so its
        export names its outputs; students without such a config, or another output size, keep theirs."""
        config = getattr(self.student_model(), "config", None)
        if names and getattr(config, "id2label", None) is not None and getattr(config, "num_labels", None) == len(names):
            config.id2label = {i: str(name) for i, name in enumerate(names)}
            config.label2id = {str(name): i for i, name in enumerate(names)}

    def export(self, directory, tokenizer):
        """Save the student so plain `AutoModel.from_pretrained(directory)` loads it, tokenizer included."""
        self.student_model().save_pretrained(directory)
        tokenizer.save_pretrained(directory)
