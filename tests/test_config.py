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
    from init.config import is_pipeline
    from process.pipeline import parse_pipeline
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
                                               "process", "utils", "deploy") for p in (REPO / d).rglob("*.py"))
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


# --- value ranges: declared beside each default in config/default.config, checked at load time ---------------

@pytest.mark.parametrize("override, expected", [
    ("train.max_steps=-1", ">= 0"),
    ("distill.temperature=-1", "> 0"),
    ("train.save_steps=-1", ">= 0"),
    ("data.max_seq_length=0", ">= 3"),
    ("train.batch_size=0", ">= 1"),
    ("train.batch_size=-8", ">= 1"),
    ("train.learning_rate=-1e-4", ">= 0"),
    ("train.gradient_accumulation_steps=0", ">= 1"),
    ("train.adam_betas=0.9,1.0", "each >= 0, < 1"),
    ("match.max_seq_length_query=2", "0 or >= 3"),
])
def test_values_out_of_range_name_key_value_and_range(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config_text("[model]\nmodel_name = kd\n", [override])
    lhs, value = override.split("=")
    section, key = lhs.split(".")
    assert str(err.value) == f"--set {lhs}: [{section}] {key} = {value}: out of range, expected {expected}"


def test_non_finite_numbers_are_refused():
    with pytest.raises(ConfigError, match=r"^--set train.learning_rate: \[train\] learning_rate = 'nan': expected a finite"):
        load_config_text("[model]\nmodel_name = kd\n", ["train.learning_rate=nan"])


def test_a_run_without_any_step_is_refused():
    with pytest.raises(ConfigError) as err:
        load_config_text("[model]\nmodel_name = kd\n", ["train.epoch=0"])
    assert str(err.value) == ("--set train.epoch: [train] epoch = 0 and max_steps = 0: no training steps; set epoch >= 1 "
                              "or max_steps >= 1")
    assert load_config_text("[model]\nmodel_name = kd\n", ["train.epoch=0", "train.max_steps=5"]).get("train", "max_steps") == 5


@pytest.mark.parametrize("text, inside, outside", [
    (">= 1", [1, 5], [0, -1]),
    ("> 0", [1e-9], [0, -0.5]),
    ("< 1", [0.99, -5], [1, 2]),
    ("<= 2", [2], [2.0001]),
    ("0..1", [0, 0.5, 1], [-0.01, 1.01]),
    (">= 0, < 1", [0, 0.999], [1, -0.1]),
    ("0 or >= 3", [0, 3, 10], [1, 2, -1]),
    ("any", [-10**9, 10**9], []),
    ("0..18446744073709551615", [2**64 - 1], [2**64]),  # integer bounds stay exact
])
def test_range_grammar(text, inside, outside):
    from init.config import Range
    assert [Range(text).contains(v) for v in inside + outside] == [True] * len(inside) + [False] * len(outside)


@pytest.mark.parametrize("comment, reason", [
    ("[int] steps", "numeric types declare a range"),
    ("[str >= 1] a name", "numeric types declare a range"),
    ("[int >= 1; resumeable] steps", "unknown flag 'resumeable'"),
    ("[float >= x] a weight", "unreadable range condition '>= x'"),
])
def test_schema_tags_are_checked(comment, reason):
    from init.config import parse_spec
    with pytest.raises(ValueError, match=reason):
        parse_spec(comment, "1")


def test_resumable_flags_parse_beside_the_type():
    from init.config import load_schema
    schema = load_schema()
    assert schema["train"]["max_steps"].resumable and schema["train"]["logging_steps"].resumable
    assert not schema["train"]["learning_rate"].resumable and schema["train"]["learning_rate"].kind == "float"
    unbounded = sorted(f"{s}.{k}" for s, keys in schema.items() for k, spec in keys.items()
                       if spec.range is not None and not spec.range.alternatives)
    assert unbounded == ["dc_bert.copy_from_bert_layer_num", "minilmv2.student_layer_index", "minilmv2.teacher_layer_index"]


@pytest.mark.parametrize("overrides, message", [
    (["train.batch_size=0"], "[train] batch_size = 0: out of range, expected >= 1"),
    (["train.epoch=0", "train.max_steps=0"], "[train] epoch = 0 and max_steps = 0: no training steps"),
])
def test_cli_value_out_of_range_exits_2_with_one_line(tmp_path, tiny_model, tiny_data, overrides, message):
    path = tmp_path / "run.config"
    path.write_text(tiny_config_text(tiny_model, tiny_data))
    sets = [arg for item in overrides for arg in ("--set", item)]
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(path), "--logdir", str(tmp_path / "run"),
                           *sets], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_resolved_config_names_repository_files_relative_to_it():
    """config.ini (Config.to_ini) says where each value came from without this machine's folders."""
    text = load_config(REPO / "config" / "quickstart" / "kd.config").to_ini()
    assert str(REPO) not in text
    assert "# from config/quickstart/teacher.config:" in text and "# from config/methods/kd.config:" in text
