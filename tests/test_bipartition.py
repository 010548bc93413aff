"""bert_bipartition and the bipartition layout: where PAD and SEP go, mean pooling over valid tokens,
the BoolQ split, end-to-end teacher training, one-line config errors, and every shipped matching config loads."""
import json

import pytest
import torch

from dataset.jsonl_split import split_rows
from init.config import load_config
from model.parts.match_common import mean_pool
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO, write_tiny_model
from tests.match_helpers import LD, LQ, match_config_text
from utils.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("bert"), dropout=0.0)


def formatter_for(tmp_path, model, data, **match):
    from formatter.bipartition import BipartitionFormatter
    (tmp_path / "f.config").write_text(match_config_text(model, data, "bert_bipartition", match=match))
    return BipartitionFormatter(load_config(tmp_path / "f.config"), "train")


def test_layout_puts_pad_before_each_sep(tmp_path, tiny_bert, pair_data):
    fmt = formatter_for(tmp_path, tiny_bert, pair_data, swap_pair="false")
    vocab = fmt.tokenizer.get_vocab()
    batch = fmt([{"text_a": "good movie", "text_b": "the plot was bad", "label": 1, "index": 0}])
    cls, sep, pad = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]
    good, movie, the, plot, was, bad = (vocab[w] for w in ("good", "movie", "the", "plot", "was", "bad"))
    a = [cls, good, movie, pad, pad, pad, pad, sep]  # Lq = 8
    b = [cls, the, plot, was, bad, pad, pad, pad, pad, pad, pad, sep]  # Ld = 12
    assert batch["a_input_ids"][0].tolist() == a and batch["b_input_ids"][0].tolist() == b
    assert batch["input_ids"][0].tolist() == a + b[1:]  # [CLS] a [PAD].. [SEP] b [PAD].. [SEP], Lq + Ld - 1 tokens
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0, 1] + [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert batch["token_type_ids"][0].tolist() == [0] * LQ + [1] * (LD - 1)
    assert batch["a_attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0, 1]
    assert batch["labels"].tolist() == [1]


def test_long_text_is_cut_and_swap_pair_swaps(tmp_path, tiny_bert, pair_data):
    fmt = formatter_for(tmp_path, tiny_bert, pair_data, swap_pair="true")
    vocab = fmt.tokenizer.get_vocab()
    long = " ".join(["good"] * 20)
    batch = fmt([{"text_a": long, "text_b": "bad", "label": 0, "index": 0}])
    assert batch["a_input_ids"][0].tolist() == [vocab["[CLS]"], vocab["bad"]] + [vocab["[PAD]"]] * 5 + [vocab["[SEP]"]]
    assert batch["b_input_ids"][0].tolist() == [vocab["[CLS]"]] + [vocab["good"]] * (LD - 2) + [vocab["[SEP]"]]
    assert batch["b_attention_mask"][0].tolist() == [1] * LD


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0], [5.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0, 1]])
    assert mean_pool(hidden, mask).tolist() == [[3.0, 2.0]]  # (1+3+5)/3, (2+4+0)/3


def test_teacher_output_does_not_depend_on_pad_positions(tmp_path, tiny_bert, pair_data):
    from process.init_process import init_all
    (tmp_path / "t.config").write_text(match_config_text(tiny_bert, pair_data, "bert_bipartition"))
    run = init_all(load_config(tmp_path / "t.config"), DistInfo(), "train")
    model = run.model.eval()
    batch = next(iter(run.loaders["train"]))
    other = dict(batch, input_ids=torch.where(batch["attention_mask"] == 0, torch.full_like(batch["input_ids"], 7), batch["input_ids"]))
    assert not torch.equal(other["input_ids"], batch["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model(batch)["logits"], model(other)["logits"], atol=1e-6)


def test_bipartition_teacher_trains_and_exports_mean_pooling(tmp_path, tiny_bert, pair_data):
    (tmp_path / "t.config").write_text(match_config_text(tiny_bert, pair_data, "bert_bipartition",
                                                         train={"epoch": 3, "learning_rate": 3e-3}))
    summary = train_run(load_config(tmp_path / "t.config"), DistInfo(), str(tmp_path / "run"), do_test=True)
    losses = [json.loads(l)["loss"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"split"' not in l]
    assert sum(losses[-3:]) < sum(losses[:3])
    exported = json.loads((tmp_path / "run" / "student" / "config.json").read_text())
    assert exported["pooling_strategy"] == "mean"
    assert summary["test"]["flops"]["offline"] == 0 and summary["test"]["flops"]["online"] > 0


def test_boolq_split_is_deterministic_every_fifth_line():
    rows = list(range(12))
    assert split_rows(rows, 5, "train") == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]
    assert split_rows(rows, 5, "valid") == split_rows(rows, 5, "test") == [4, 9]


def test_wrong_formatter_is_one_line_error(tmp_path, tiny_bert, pair_data):
    from process.init_process import init_all
    text = match_config_text(tiny_bert, pair_data, "bert_bipartition").replace("formatter_type = bipartition",
                                                                             "formatter_type = hf_tokenizer")
    (tmp_path / "bad.config").write_text(text)
    with pytest.raises(ConfigError) as err:
        init_all(load_config(tmp_path / "bad.config"), DistInfo(), "train")
    line = text.splitlines().index("formatter_type = hf_tokenizer") + 1
    assert str(err.value) == (f"{tmp_path / 'bad.config'}:{line}: [data] formatter_type = hf_tokenizer: bert_bipartition reads the "
                              "bipartition layout; set formatter_type = bipartition")


def test_too_short_tower_is_one_line_error(tmp_path, tiny_bert, pair_data):
    with pytest.raises(ConfigError, match=r"\[match\] max_seq_length_query = 2: out of range, expected 0 or >= 3"):
        formatter_for(tmp_path, tiny_bert, pair_data, max_seq_length_query=2)


def test_every_shipped_matching_config_loads():
    from init.config import is_pipeline
    from process.pipeline import parse_pipeline, stage_config
    paths = sorted((REPO / "config" / "match").rglob("*.config"))
    assert {p.parent.name for p in paths} >= {"RTE", "QQP", "BoolQ", "seed_layout"} and len(paths) >= 15
    for path in paths:
        if is_pipeline(path):
            for name, section in parse_pipeline(path):
                stage_config(path, name, section, "runs/x", [], handoff=False)
        else:
            config = load_config(path)
            assert config.get("model", "model_name") in ("bert_bipartition", "virt", "dc_bert")
            assert config.get("data", "formatter_type") == "bipartition"
            if not path.name.endswith("base.config"):
                assert "python train.py --config " + str(path.relative_to(REPO)) in path.read_text()


SHARED = REPO.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "boolq" / "val_superglue_format.jsonl").is_file(), reason="BoolQ not in ../shared/data")
def test_boolq_config_splits_the_real_dev_file():
    from process.init_process import build_dataset
    config = load_config(REPO / "config" / "match" / "BoolQ" / "teacher.config", [f"data.root={SHARED}"])
    train, valid = build_dataset(config, "train"), build_dataset(config, "valid")
    assert (len(train), len(valid)) == (2616, 654)
    assert not {ex["text_a"] + ex["text_b"] for ex in train.examples} & {ex["text_a"] + ex["text_b"] for ex in valid.examples}
    assert train.label_list == ["false", "true"]


def test_seed_layout_jsonl_trains_the_teacher(tmp_path, tiny_bert):
    """The VIRT authors' layout: <root>/rte/train.jsonl, dev.jsonl with premise / hypothesis / label."""
    rows = [{"premise": "the movie was good", "hypothesis": "good", "label": "entailment"},
            {"premise": "the plot was bad", "hypothesis": "good", "label": "not_entailment"}] * 8
    (tmp_path / "rte").mkdir()
    for name in ("train", "dev"):
        (tmp_path / "rte" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [f"data.root={tmp_path}", f"model.pretrained={tiny_bert}", "match.max_seq_length_query=8",
                 "match.max_seq_length_doc=12", "train.epoch=1", "train.batch_size=8", "eval.latency_batches=1",
                 "output.tensorboard=false"]
    config = load_config(REPO / "config" / "match" / "seed_layout" / "rte_teacher.config", overrides)
    summary = train_run(config, DistInfo(), str(tmp_path / "run"), do_test=True)
    assert summary["test"]["metrics"]["examples"] == 16 and summary["steps"] == 2


def test_shipped_pipeline_runs_on_tiny_stages_and_feeds_the_table(tmp_path, tiny_bert, pair_data):
    """config/match/RTE/pipeline.config itself, with each stage file replaced by a tiny one of the same role."""
    from process.pipeline import run_pipeline
    from experiments.match_table import table
    train = {"epoch": 1, "learning_rate": 3e-3}
    stages = {"teacher": ("bert_bipartition", None, {}),
              "siamese": ("virt", None, {"virt": {"model_type": "siamese", "use_kd_att": "false"}}),
              "late_fusion": ("virt", None, {"virt": {"model_type": "late_fusion", "use_kd_att": "false"}}),
              "virt": ("virt", "runs/unused", {"virt": {"model_type": "late_fusion", "use_kd_att": "true"}}),
              "dc_bert": ("dc_bert", "runs/unused", {})}
    for stage, (name, teacher, sections) in stages.items():
        (tmp_path / f"{stage}.config").write_text(match_config_text(tiny_bert, pair_data, name, teacher, train=train, **sections))
    (tmp_path / "pipeline.config").write_text((REPO / "config" / "match" / "RTE" / "pipeline.config").read_text())
    run_pipeline(tmp_path / "pipeline.config", DistInfo(), str(tmp_path / "RTE"))
    text = table([str(tmp_path / "RTE")])
    assert "missing" not in text and "- RTE: VIRT - plain two-tower = " in text
    virt = json.loads((tmp_path / "RTE" / "virt" / "results.json").read_text())
    assert virt["two_tower"]["online_flops_per_query"] < json.loads(
        (tmp_path / "RTE" / "teacher" / "results.json").read_text())["flops"]["online"]
