"""config.json + model.safetensors: how the framework's own word-level modules (Tang's BiLSTM, ELMo's biLM and the
ELMo student) are saved and loaded. config.json holds the constructor's arguments beside a `model_type` tag, so a
folder of another kind is refused by name; the weights are a plain safetensors state dict."""
import json
from pathlib import Path

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def save_plain(module, directory, model_type, settings):
    """Write `module`'s weights and its constructor arguments `settings` (a JSON-able dict) into `directory`."""
    from safetensors.torch import save_file
    Path(directory).mkdir(parents=True, exist_ok=True)
    meta = {"model_type": model_type, "architectures": [type(module).__name__], **settings}
    (Path(directory) / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(Path(directory) / WEIGHTS_FILE))


def read_settings(directory, model_type):
    """The constructor arguments in directory/config.json; ValueError when it holds another kind of model."""
    meta = json.loads((Path(directory) / CONFIG_FILE).read_text())
    found = meta.pop("model_type", None)
    if found != model_type:
        raise ValueError(f"{directory}: not a {model_type} export (model_type {found})")
    meta.pop("architectures", None)
    return meta


def read_weights(directory):
    from safetensors.torch import load_file
    return load_file(str(Path(directory) / WEIGHTS_FILE))


def load_plain(cls, directory, model_type):
    """cls(**settings) with the saved weights, in eval mode."""
    model = cls(**read_settings(directory, model_type))
    model.load_state_dict(read_weights(directory))
    return model.eval()
