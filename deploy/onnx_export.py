"""The exported student as deployable files: ONNX (fp32), ONNX int8 and a torch int8 copy.

Classifiers export their logits; sentence encoders export the pooled sentence embedding (mean over the real tokens,
then its Dense projection when its sentence-transformers files have one, then L2 normalisation when they end with
a Normalize module), so a deployment gets what `SentenceTransformer.encode` returns without re-writing the pooling.
The torch int8 copy holds the encoder only: a projected student's Dense stays in fp32 in its `2_Dense` folder.

- ONNX: torch.onnx.export's TorchScript tracer (`dynamo=False`), dynamic batch and sequence axes, opset 17. The
  torch.export-based default needs onnxscript, one more dependency, for the same graph; the traced one matches the
  PyTorch student to ~1e-8 on our students (tests/test_export.py), padded or not, at lengths other than the sample's.
- ONNX int8: onnxruntime's dynamic quantization (int8 weights per output channel, activations quantized per batch
  at run time).
- torch int8: torch.ao.quantization.quantize_dynamic over the nn.Linear layers (per channel too); its state dict is saved, and
  `load_torch_int8` rebuilds the model from the HF folder, quantizes it the same way and loads it (a pickled module
  would tie the file to this code's classes).
"""
import json
from pathlib import Path

import torch
from torch import nn

ONNX_OPSET = 17


def student_kind(student_dir):
    """'classifier' for a *ForSequenceClassification folder, 'encoder' for a sentence-transformers encoder, else None."""
    student_dir = Path(student_dir)
    architectures = json.loads((student_dir / "config.json").read_text()).get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "classifier"
    if (student_dir / "modules.json").is_file():
        return "encoder"
    return None


def normalises(student_dir):
    """Whether the sentence-transformers pipeline in the folder ends with a Normalize module."""
    path = Path(student_dir) / "modules.json"
    modules = json.loads(path.read_text()) if path.is_file() else []
    return any(m.get("type", "").endswith("Normalize") for m in modules)


def load_student(student_dir, kind):
    """The exported student as a PyTorch module in eval mode, fp32."""
    from transformers import AutoModel, AutoModelForSequenceClassification
    cls = AutoModelForSequenceClassification if kind == "classifier" else AutoModel
    # Ding et al.'s recurrent students ship their model code in the folder (auto_map): the code this project wrote
    remote = "auto_map" in json.loads((Path(student_dir) / "config.json").read_text())
    return cls.from_pretrained(str(student_dir), dtype=torch.float32, trust_remote_code=remote).eval()


class Deployed(nn.Module):
    """One tensor out of positional tensor inputs: the logits of a classifier, or the mean-pooled (and, where the
    model does, projected by its Dense and normalised) embedding of an encoder. What the ONNX file computes and what
    parity compares."""

    def __init__(self, model, kind, input_names, normalise=False, dense=None):
        super().__init__()
        self.model, self.kind, self.input_names, self.normalise = model, kind, tuple(input_names), normalise
        self.dense = dense

    def forward(self, *tensors):
        inputs = dict(zip(self.input_names, tensors))
        out = self.model(**inputs)
        if self.kind == "classifier":
            return out.logits
        mask = inputs["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.dense is not None:
            pooled = self.dense(pooled)
        return nn.functional.normalize(pooled, dim=-1) if self.normalise else pooled


def input_names(model, tokenizer_names):
    """The tokenizer's tensors the model's forward takes, in the tokenizer's order (MPNet has no token_type_ids)."""
    import inspect
    accepted = inspect.signature(model.forward).parameters
    return [name for name in tokenizer_names if name in accepted]


def export_onnx(deployed, sample, path):
    """Trace `deployed` on the sample tensors (a dict, in its input order) into an ONNX file at `path`."""
    names = list(deployed.input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["output"] = {0: "batch"}
    import warnings
    with warnings.catch_warnings():  # the tracer's notes on Python branches of HF code; parity checks the result
        warnings.simplefilter("ignore")
        torch.onnx.export(deployed.eval(), tuple(sample[n] for n in names), str(path), input_names=names,
                          output_names=["output"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)


def quantize_onnx(source, target):
    """onnxruntime dynamic quantization, int8 weights with one scale per output channel. Per tensor (the default)
    moved the quickstart student's logits by up to 0.57 and cost 3 of its 100 dev sentences; per channel 0.16 and
    none (same file size)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    import logging
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process first is for static quantization
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().setLevel(level)


def quantize_torch(model):
    """A dynamic-int8 copy of the model's nn.Linear layers, weights per output channel as quantize_onnx (the
    original is left as it was)."""
    import copy
    import warnings
    with warnings.catch_warnings():  # torch.ao's notice that its other quantization flows moved to torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        return quantize_dynamic(copy.deepcopy(model), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8).eval()


def load_torch_int8(student_dir, state_path):
    """The torch int8 copy saved by an export: the HF student, quantized as at export, its int8 state loaded."""
    import warnings
    kind = student_kind(student_dir)
    model = quantize_torch(load_student(student_dir, kind))
    with warnings.catch_warnings():  # packed int8 weights still load through TypedStorage
        warnings.simplefilter("ignore")
        model.load_state_dict(torch.load(str(state_path), weights_only=True))
    return model


def onnx_session(path, threads):
    """An onnxruntime CPU session with `threads` intra-op threads (as many as torch uses, for a fair comparison)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # no busy-waiting of its threads after a run: parity times it interleaved with torch, whose next call would
    # otherwise share the cores with spinning threads (measured: PyTorch's batch-1 time tripled)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
