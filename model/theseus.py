"""theseus: BERT-of-Theseus, phase 1 (Xu et al. 2020, "Compressing BERT by Progressive Module Replacing").

The fine-tuned teacher (the predecessor, frozen) is cut into k = layers / compress_ratio blocks of
compress_ratio consecutive layers. The successor (`self.student`, what is exported) is a k-layer copy of
the teacher: layer i starts as teacher layer `[student] layer_select`/`layer_list` picks (the paper's code:
first, i.e. layer i), embeddings, pooler and classifier are the teacher's. On every training forward
module i is, with probability p, successor layer i, else predecessor block i; the loss is the task loss
of the hybrid. Gradients reach a successor layer through the frozen predecessor blocks above it, so the
predecessor runs with autograd here (not run_teacher's inference_mode). As in the paper's code only the
successor's layers train in phase 1 (its embeddings, pooler and classifier are frozen copies), and the
predecessor blocks run in the method's mode (dropout on while training; the paper trains the whole
hybrid in train mode). Evaluation and export use the successor alone. Phase 2 (fine-tuning the
successor alone, everything trainable) is a bert_cls stage with `init_from` = this stage.

p follows [theseus] scheduler_type (model/parts/theseus_schedule.py) over the optimizer steps taken so far.
The method counts its own training forwards (checkpointed as its extra state, so a resumed run
continues the schedule): step = forwards // gradient_accumulation_steps. This equals the train loop's
global step except after an epoch that ends mid-accumulation or a skipped non-finite step, where it runs
ahead by at most one step each time. The per-module draws use torch's global CPU RNG, which checkpoints
save and restore, so a resumed run draws the same modules.
"""
import contextlib

import torch

from model.base import DistillModel, student_inputs
from model.parts import layer_stack
from model.parts.features import encoder_layers
from model.parts.student import cut_layers, num_layers_of
from pretrained.loading import load_classifier, resolve_model_path
from model.parts.layer_map import select_layers
from model.parts.loss import task_loss
from model.parts.theseus_schedule import key_where as _where, replacing_rate
from utils.errors import ConfigError


def extended_mask(model_config, embeddings, attention_mask):
    """The attention mask BertModel hands its layers (additive float for eager, boolean or None for
    sdpa), built by the same transformers function."""
    from transformers.masking_utils import create_bidirectional_mask
    return create_bidirectional_mask(config=model_config, inputs_embeds=embeddings, attention_mask=attention_mask)


class Theseus(DistillModel):
    paper = "Xu et al. 2020, BERT-of-Theseus: Compressing BERT by Progressive Module Replacing"
    find_unused_parameters = True  # successor layers not drawn on a step get no gradient

    def __init__(self, config):
        super().__init__()  # the schedule's ranges are checked at load time (config/default.config)
        path = resolve_model_path(config.get("distill", "teacher"), "[distill] teacher")
        teacher = load_classifier(path, "[distill] teacher")
        labels = config.get("model", "num_labels")
        if teacher.config.num_labels != labels:
            raise ConfigError(f"[distill] teacher: {path} has {teacher.config.num_labels} labels, the data has {labels}")
        if not layer_stack.supported(teacher):
            raise ConfigError(f"[distill] teacher: theseus runs the teacher's layers one by one, which it can for "
                              f"{' and '.join(layer_stack.CLASSIFIERS)}; {path} is a {type(teacher).__name__}")
        self.set_teacher(teacher)
        n, ratio = num_layers_of(teacher), config.get("theseus", "compress_ratio")
        if n % ratio:
            raise ConfigError(f"{_where(config, 'theseus', 'compress_ratio')} = {ratio}: the teacher's {n} layers "
                              "do not split into blocks of that many")
        k = n // ratio
        if config.get("student", "init_from") != "teacher":
            raise ConfigError(f"{_where(config, 'student', 'init_from')} = {config.get('student', 'init_from')}: "
                              "theseus builds its successor from the teacher's layers; set init_from = teacher")
        if config.get("student", "num_layers") not in (0, k):
            raise ConfigError(f"{_where(config, 'student', 'num_layers')} = {config.get('student', 'num_layers')}: "
                              f"theseus' successor has layers / compress_ratio = {n} / {ratio} = {k} layers")
        keep = select_layers(n, k, config.get("student", "layer_select"), config.get("student", "layer_list"))
        if len(keep) != k:
            raise ConfigError(f"{_where(config, 'student', 'layer_list')}: {len(keep)} layers given, the successor "
                              f"has {n} / {ratio} = {k}")
        self.student = cut_layers(teacher, keep)
        for name, param in self.student.named_parameters():
            param.requires_grad_(".encoder.layer." in name)  # phase 1 trains the successor's layers only
        self.ratio, self.modules_count = ratio, k
        self.schedule = dict(kind=config.get("theseus", "scheduler_type"), rate=config.get("theseus", "replacing_rate"),
                             linear_k=config.get("theseus", "scheduler_linear_k"),
                             steps_for_replacing=config.get("theseus", "steps_for_replacing"))
        self.accumulation = config.get("train", "gradient_accumulation_steps")
        self.forwards = 0  # training forwards so far (extra state: checkpointed with the heads)

    def get_extra_state(self):
        return torch.tensor(self.forwards)

    def set_extra_state(self, state):
        self.forwards = int(state)

    def current_rate(self):
        """p for the next training forward."""
        return replacing_rate(step=self.forwards // self.accumulation, **self.schedule)

    def draw(self):
        """Which modules the successor replaces on this forward: one Bernoulli(p) per module, from the
        global CPU RNG (saved in checkpoints), drawn even when p is 0 or 1 so the RNG stream is the same."""
        p = self.current_rate()
        return [bool(u < p) for u in torch.rand(self.modules_count).tolist()]

    @contextlib.contextmanager
    def predecessor_mode(self, training):
        layers = encoder_layers(self.teacher)
        layers.train(training)
        try:
            yield
        finally:
            layers.eval()

    def hybrid_logits(self, inputs, replace):
        """Logits of the hybrid: successor embeddings, then per module i successor layer i (replace[i])
        or predecessor block i, then the successor's head (BERT: pooler and classifier; MPNet: its classification
        head). Each model's layers get its own extras (MPNet: the relative position bias of its own table)."""
        student = self.student
        hidden = layer_stack.embed(student, inputs)
        mask = inputs.get("attention_mask")
        masks = {}

        def mask_for(model):  # per attention implementation (eager: additive floats, sdpa: bools)
            key = model.config._attn_implementation
            if key not in masks:
                masks[key] = extended_mask(model.config, hidden, mask)
            return masks[key]

        extras = {id(m): layer_stack.layer_kwargs(m, hidden) for m in (student, self.teacher)}
        successor, predecessor = encoder_layers(student), encoder_layers(self.teacher)
        for i, use_successor in enumerate(replace):
            if use_successor:
                hidden = layer_stack.run_layer(successor[i], hidden, mask_for(student), extras[id(student)])
            else:
                for layer in predecessor[i * self.ratio:(i + 1) * self.ratio]:
                    hidden = layer_stack.run_layer(layer, hidden, mask_for(self.teacher), extras[id(self.teacher)])
        return layer_stack.head(student, hidden)

    def forward(self, batch):
        inputs = student_inputs(batch)
        if not self.training:
            out = {"logits": self.student(**inputs).logits}
            if "labels" in batch:
                out["loss"] = out["loss_hard"] = task_loss(out["logits"], batch["labels"])
            return out
        if "labels" not in batch:
            raise ConfigError("[model] model_name = theseus: phase 1 trains on gold labels; the training data has none")
        replace = self.draw()
        self.forwards += 1
        with self.predecessor_mode(True):
            logits = self.hybrid_logits(inputs, replace)
        if not any(replace):
            # only predecessor blocks drawn: nothing trainable was used. A zero-weighted bias keeps the loss
            # differentiable and gives DDP's reducer a gradient hook (its grad is 0; biases have no weight decay)
            logits = logits + 0.0 * encoder_layers(self.student)[0].output.dense.bias.sum()
        out = {"logits": logits}
        out["loss"] = out["loss_hard"] = task_loss(logits, batch["labels"])
        return out
