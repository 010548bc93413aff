"""Config loading: typos, types, missing keys, inheritance, --set, registry names, the CLI's exit code."""
import subprocess
import sys

import pytest

from tests.helpers import REPO, tiny_config_text
from init.config import load_config, load_config_text
from init.registry import lookup, model_list
from utils.errors import ConfigError


def test_typo_names_file_line_and_closest_key(write_config):
    path = write_config("run.config", "[model]\nmodel_name = kd\n\n[train]\nepochs = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}:5: [train] epochs: unknown key; did you mean 'epoch'?"


def test_key_in_wrong_section_points_to_the_right_one():
    with pytest.raises(ConfigError, match=r"\[train\] temperature: unknown key; it belongs in \[distill\] temperature"):
        load_config_text("[model]\nmodel_name = kd\n[train]\ntemperature = 2\n")


def test_unknown_section_suggests_closest():
    with pytest.raises(ConfigError, match=r"<text>:4: unknown section \[trian\]; did you mean \[train\]\?"):
        load_config_text("[model]\nmodel_name = kd\n[trian]\nepoch = 1\n")


@pytest.mark.parametrize("key,value,reason", [
    ("train.epoch", "three", "expected an integer"),
    ("train.learning_rate", "fast", "expected a number"),
    ("train.shuffle", "False-ish", "expected true or false"),
    ("distill.kd_loss", "l1", "expected one of kl, mse"),
])
def test_wrong_type_is_one_line(key, value, reason):
    with pytest.raises(ConfigError) as err:
        load_config_text("[model]\nmodel_name = kd\n", [f"{key}={value}"])
    section, name = key.split(".")
    assert str(err.value) == f"--set {key}: [{section}] {name} = '{value}': {reason}"


def test_missing_required_key():
    with pytest.raises(ConfigError) as err:
        load_config_text("[train]\nepoch = 1\n")
    assert str(err.value) == "<text>: [model] model_name: required key missing"


def test_string_false_is_a_real_bool():
    config = load_config_text("[model]\nmodel_name = kd\n[train]\nshuffle = False\n")
    assert config.get("train", "shuffle") is False


def test_inheritance_order_and_set_wins(write_config):
    write_config("base.config", "[model]\nmodel_name = bert_cls\n[train]\nepoch = 7\nbatch_size = 4\n")
    path = write_config("run.config", "[config]\nbase = base.config\n[train]\nepoch = 2\n")
    config = load_config(path, ["train.batch_size=16"])
    assert config.get("model", "model_name") == "bert_cls"  # from base
    assert config.get("train", "epoch") == 2  # run file beats base
    assert config.get("train", "batch_size") == 16  # --set beats both
    assert config.get("train", "seed") == 42  # default.config
    assert config.source("train", "epoch").endswith("run.config:4")


def test_inheritance_cycle(write_config):
    write_config("a.config", "[config]\nbase = b.config\n")
    path = write_config("b.config", "[config]\nbase = a.config\n")
    with pytest.raises(ConfigError, match="inheritance cycle"):
        load_config(path)


def test_resolved_config_round_trips():
    config = load_config_text("[model]\nmodel_name = kd\n[train]\nadam_betas = 0.8, 0.9\n")
    again = load_config_text(config.to_ini())
    assert again.values == config.values


def test_unknown_registry_name_suggests_closest():
    config = load_config_text("[model]\nmodel_name = bert_clss\n")
    with pytest.raises(ConfigError) as err:
        lookup(model_list, config, "model", "model_name")
    known = ", ".join(sorted(model_list))
    assert {"bert_cls", "kd", "pkd", "theseus", "tinybert", "distilbert", "minilmv2", "distilled_bilstm"} <= set(model_list)
    assert str(err.value) == f"<text>:2: [model] model_name = 'bert_clss': unknown; did you mean 'bert_cls'? known: {known}"


def test_every_shipped_config_loads():
    from process.pipeline import is_pipeline, parse_pipeline
    paths = sorted((REPO / "config").rglob("*.config"))
    assert len(paths) > 10
    for path in paths:
        if path.name == "default.config":
            continue
        parse_pipeline(path) if is_pipeline(path) else load_config(path)


def test_cli_bad_config_exits_2_with_one_line(tmp_path, tiny_model, tiny_data):
    path = tmp_path / "bad.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data).replace("batch_size = 8", "batchsize = 8", 1))
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(path), "--logdir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "[train] batchsize: unknown key; did you mean 'batch_size'?" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_every_declared_key_is_read_by_some_code():
    """default.config is the schema: a key nothing reads would be accepted silently, so none may exist."""
    from init.config import load_schema
    code = "\n".join(p.read_text() for d in ("dataset", "formatter", "model", "evaluator", "init", "optim_scheduler",
                                               "process", "utils") for p in (REPO / d).rglob("*.py"))
    code += (REPO / "train.py").read_text() + (REPO / "test.py").read_text()
    unread = [f"[{s}] {k}" for s, keys in load_schema().items() for k in keys
              if f'"{k}"' not in code and f"_{k.split('_')[-1]}\"" not in code and k != "base"]
    assert unread == []


def test_resolved_config_stands_alone_without_its_bases(write_config, tmp_path):
    write_config("base.config", "[train]\nepoch = 7\n")
    path = write_config("run.config", "[config]\nbase = base.config\n[model]\nmodel_name = kd\n")
    config = load_config(path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.ini").write_text(config.to_ini())
    again = load_config(elsewhere / "config.ini")  # base.config is not beside it, and is not needed
    assert again.get("train", "epoch") == 7 and again.get("config", "base") in ([], None, "")
    assert {k: v for k, v in again.values.items() if k != ("config", "base")} == \
        {k: v for k, v in config.values.items() if k != ("config", "base")}
