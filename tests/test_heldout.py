"""[data] heldout_every: a task whose only labelled file is its train file (CoLA in ../shared/data) is scored on a fixed
part of it that no run trains on; the rule is dataset/heldout.py's, shared with BoolQ's jsonl_split."""
import subprocess
import sys

import pytest

from dataset.glue_tsv import GlueTSVDataset
from evaluator.glue import GlueEvaluator
from init.config import load_config, load_config_text
from tests.helpers import REPO
from tests.test_datasets import shared_data
from utils.errors import ConfigError

COLA = ["glue/CoLA/teacher.config", "glue/CoLA/kd.config", "glue/CoLA/baseline.config"]


def cola_config(tmp_path, every, rows=7, overrides=()):
    """A CoLA-layout train.tsv (no header) of `rows` sentences s0, s1, ... and a config reading it with heldout_every."""
    (tmp_path / "train.tsv").write_text("".join(f"gj04\t{i % 2}\t\ts{i}\n" for i in range(rows)))
    return load_config_text(f"[model]\nmodel_name = bert_cls\n[data]\ntask = CoLA\nroot = {tmp_path}\n"
                            f"train_file = train.tsv\nvalid_file = train.tsv\ntest_file = train.tsv\n"
                            f"heldout_every = {every}\n", overrides)


def texts(config, mode):
    return [e["text_a"] for e in GlueTSVDataset(config, mode)]


def test_every_third_row_is_held_out(tmp_path):
    config = cola_config(tmp_path, 3)
    assert texts(config, "train") == ["s0", "s1", "s3", "s4", "s6"]
    assert texts(config, "valid") == texts(config, "test") == ["s2", "s5"]
    assert [e["label"] for e in GlueTSVDataset(config, "valid")] == [0, 1]


def test_train_and_heldout_cover_every_row_once(tmp_path):
    config = cola_config(tmp_path, 4, rows=10)
    train, heldout = texts(config, "train"), texts(config, "valid")
    assert heldout == ["s3", "s7"] and len(train) == 8
    assert sorted(train + heldout) == sorted(f"s{i}" for i in range(10)) and not set(train) & set(heldout)


def test_off_reads_the_file_whole_and_the_cap_applies_after_the_split(tmp_path):
    assert texts(cola_config(tmp_path, 0), "valid") == [f"s{i}" for i in range(7)]
    capped = cola_config(tmp_path, 3, overrides=["data.max_examples=3"])
    assert texts(capped, "train") == ["s0", "s1", "s3"] and texts(capped, "valid") == ["s2", "s5"]


def test_another_valid_file_is_refused(tmp_path):
    (tmp_path / "dev.tsv").write_text("gj04\t1\t\td0\n")
    config = cola_config(tmp_path, 3, overrides=["data.valid_file=dev.tsv"])
    with pytest.raises(ConfigError, match=r"^<text>:\d+: \[data\] heldout_every = 3 holds out rows of train_file, "
                                          r"but valid_file is another file"):
        GlueTSVDataset(config, "valid")


def test_augmentation_never_copies_the_heldout_rows_and_an_unmarked_file_is_refused(tmp_path):
    """TinyBERT/Tang augmentation of the train file would otherwise put copies of the dev rows into training."""
    pytest.importorskip("tools.augment_tang")
    from tools.augment import main as augment
    cola_config(tmp_path, 3, rows=9)
    (tmp_path / "train.tsv").write_text("".join(f"r{i}\t{i % 2}\t\tthe old film was very good and long {i}\n"
                                                for i in range(9)))  # column 0 names the source row in each copy
    out = tmp_path / "aug.tsv"
    augment(["--task", "CoLA", "--input", str(tmp_path / "train.tsv"), "--method", "tang", "--n_aug", "4",
             "--output", str(out), "--heldout_every", "3"])
    sources = {line.split("\t")[0] for line in out.read_text().splitlines()}
    assert sources == {"r0", "r1", "r3", "r4", "r6", "r7"}  # rows 2, 5, 8 are the dev rows: never copied
    with_aug = cola_config(tmp_path, 3, rows=9, overrides=["data.use_aug=true", f"data.aug_file={out}"])
    assert len(GlueTSVDataset(with_aug, "train")) == 6 + len(out.read_text().splitlines())
    augment(["--task", "CoLA", "--input", str(tmp_path / "train.tsv"), "--method", "tang", "--n_aug", "2",
             "--output", str(out)])  # the whole file: its record says heldout_every 0
    with pytest.raises(ConfigError) as info:
        GlueTSVDataset(with_aug, "train")
    assert str(info.value).endswith(f"[data] aug_file = {out} was not made from the training part alone "
                                    "(heldout_every = 3): its copies may come from the held-out dev rows; remake it "
                                    "with tools/augment.py --heldout_every 3")
    with pytest.raises(ConfigError, match=r"^--heldout_every 1: must be 0 \(the whole file\) or >= 2$"):
        augment(["--task", "CoLA", "--input", str(tmp_path / "train.tsv"), "--method", "tang", "--heldout_every", "1"])


@pytest.mark.parametrize("value", ["1", "-1"])
def test_out_of_range_is_one_line(value):
    with pytest.raises(ConfigError) as info:
        load_config_text(f"[model]\nmodel_name = bert_cls\n[data]\nheldout_every = {value}\n")
    assert str(info.value) == f"<text>:4: [data] heldout_every = {value}: out of range, expected 0 or >= 2"


def test_cli_out_of_range_exits_2_naming_file_and_key(tmp_path):
    path = tmp_path / "cola.config"
    path.write_text(f"[config]\nbase = {REPO / 'config' / 'glue' / 'CoLA' / 'teacher.config'}\n[data]\nheldout_every = 1\n")
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(path), "--logdir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].endswith("cola.config:4: [data] heldout_every = 1: out of range, expected 0 or >= 2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", COLA)
def test_cola_configs_hold_out_every_tenth_row_and_score_mcc(name):
    config = load_config(REPO / "config" / name)
    assert config.get("data", "heldout_every") == 10
    assert config.get("data", "valid_file") == config.get("data", "test_file") == config.get("data", "train_file")
    assert GlueEvaluator(config).main_metric == "mcc"


def test_cola_split_of_the_real_train_file():
    root = shared_data()
    if root is None:
        pytest.skip("shared data dir (../shared/data or $KDW_SHARED_DATA) not present on this machine")
    config = load_config(REPO / "config" / COLA[0], [f"data.root={root / 'glue'}"])
    train, heldout = GlueTSVDataset(config, "train"), GlueTSVDataset(config, "valid")
    assert (len(train), len(heldout)) == (7696, 855)  # 8,551 rows: 855 = 8551 // 10
    assert not {e["guid"] for e in train} & {e["guid"] for e in heldout}
