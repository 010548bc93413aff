"""BERT-of-Theseus: replacement schedules by hand, the hybrid forward (p = 0 / 1, masks, gradients through
frozen predecessor blocks), end-to-end phase 1 with exact resume, the phase 1 -> phase 2 pipeline, config errors."""
import json

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from model.parts.features import encoder_layers
from model.parts.theseus_schedule import replacing_rate
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import REPO, tiny_config_text, write_tiny_model
from utils.errors import ConfigError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def test_constant_schedule_by_hand():
    assert [replacing_rate("constant", s, 0.5, steps_for_replacing=3) for s in range(5)] == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert [replacing_rate("constant", s, 0.5) for s in (0, 10, 10**6)] == [0.5, 0.5, 0.5]  # 0 = never switch
    assert replacing_rate("none", 7, 0.25, steps_for_replacing=8) == 0.25  # the paper code's name


def test_linear_schedule_by_hand_and_clipped_at_one():
    got = [replacing_rate("linear", s, 0.3, linear_k=0.1) for s in (0, 1, 2, 6, 7, 8, 100)]
    assert got == pytest.approx([0.3, 0.4, 0.5, 0.9, 1.0, 1.0, 1.0])
    assert replacing_rate("linear", 1000, 0.3, linear_k=0.0006) == pytest.approx(0.9)  # the paper's k, b
    assert replacing_rate("linear", 2000, 0.3, linear_k=0.0006) == 1.0


@pytest.fixture(scope="module")
def teacher4(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("theseus_teacher4"), layers=4, dropout=0.0)


@pytest.fixture(scope="module")
def teacher4_drop(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("theseus_teacher4_drop"), layers=4, dropout=0.1, seed=1)


def theseus_text(teacher, data, theseus=None, student=None, **train):
    return tiny_config_text(teacher, data, "theseus", student=dict({"init_from": "teacher", "layer_select": "first"},
                                                                   **(student or {})),
                            distill={"teacher": str(teacher)},
                            theseus=dict({"compress_ratio": 2, "scheduler_type": "linear", "replacing_rate": 0.3,
                                          "scheduler_linear_k": 0.1}, **(theseus or {})),
                            train=dict({"epoch": 2, "save_steps": 3}, **train))


def build(tmp_path, text):
    from process.init_process import init_all
    (tmp_path / "t.config").write_text(text)
    return init_all(load_config(tmp_path / "t.config"), DistInfo(), "train")


def first_batch(run):
    batch = next(iter(run.loaders["train"]))
    return batch, {k: batch[k] for k in INPUTS}


def test_successor_is_the_teachers_first_layers_with_frozen_embeddings_and_head(tmp_path, teacher4, tiny_data):
    run = build(tmp_path, theseus_text(teacher4, tiny_data))
    model = run.model
    t_state, s_state = model.teacher.state_dict(), model.student.state_dict()
    assert model.student.config.num_hidden_layers == 2
    for i in range(2):  # successor layer i = predecessor layer i (the paper's code)
        prefix = f"bert.encoder.layer.{i}."
        assert all(torch.equal(v, t_state[k]) for k, v in s_state.items() if k.startswith(prefix))
    assert all(torch.equal(v, t_state[k]) for k, v in s_state.items() if ".encoder.layer." not in k)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".encoder.layer." in n for n in trainable)  # embeddings, pooler, classifier frozen
    optimized = {id(p) for g in run.optimizer.param_groups for p in g["params"]}
    assert not optimized & {id(p) for p in model.teacher.parameters()}
    assert type(model).find_unused_parameters is True


def test_p_one_is_the_successor_and_p_zero_is_the_teacher(tmp_path, teacher4, tiny_data):
    for rate, reference in ((1.0, "student"), (0.0, "teacher")):
        run = build(tmp_path, theseus_text(teacher4, tiny_data, theseus={"replacing_rate": rate, "scheduler_linear_k": 0.0}))
        model = run.model.train()  # training forward, dropout 0: the drawn hybrid is deterministic
        batch, inputs = first_batch(run)
        out = model(batch)
        with torch.no_grad():
            expected = getattr(model, reference)(**inputs).logits
        assert torch.allclose(out["logits"], expected, atol=1e-5), rate
        assert out["loss"].item() == pytest.approx(F.cross_entropy(expected, batch["labels"]).item(), rel=1e-5)
        assert out["loss"].requires_grad  # also at p = 0, where nothing trainable was drawn
        model.eval()
        with torch.no_grad():  # evaluation (and export) is the successor alone, whatever p
            assert torch.allclose(model(batch)["logits"], model.student(**inputs).logits, atol=1e-6)


def test_gradients_reach_successor_layer_0_through_frozen_predecessor_blocks(tmp_path, teacher4, tiny_data):
    run = build(tmp_path, theseus_text(teacher4, tiny_data))
    model = run.model.train()
    batch, inputs = first_batch(run)
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    logits = model.hybrid_logits(inputs, [True, False])  # module 0 = successor layer 0, module 1 = teacher layers 2, 3
    F.cross_entropy(logits, batch["labels"]).backward()
    layer0, layer1 = encoder_layers(model.student)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer0.parameters())
    assert all(p.grad is None for p in layer1.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    run.optimizer.step()
    assert all(torch.equal(v, teacher_before[k]) for k, v in model.teacher.state_dict().items())
    embeddings = model.student.bert.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, teacher_before["bert.embeddings.word_embeddings.weight"])


def test_no_teacher_twin_starts_from_the_same_weights(tmp_path, teacher4, tiny_data):
    """theseus_baseline.config's recipe: bert_cls from the teacher's run directory, first 2 layers kept."""
    successor = build(tmp_path, theseus_text(teacher4, tiny_data)).model.student.state_dict()
    twin = build(tmp_path, tiny_config_text(teacher4, tiny_data, "bert_cls", student={
        "init_from": "pretrained", "num_layers": 2, "layer_select": "first"})).model.student.state_dict()
    assert twin.keys() == successor.keys() and all(torch.equal(twin[k], successor[k]) for k in twin)


@pytest.mark.parametrize("impls", [("eager", "eager"), ("sdpa", "sdpa"), ("sdpa", "eager")])
def test_padding_does_not_change_the_hybrid(tmp_path, teacher4, tiny_data, impls):
    run = build(tmp_path, theseus_text(teacher4, tiny_data))
    model = run.model.eval()
    model.teacher.set_attn_implementation(impls[0])
    model.student.set_attn_implementation(impls[1])
    tok = run.tokenizer
    alone = dict(tok(["the movie was good"], return_tensors="pt"))
    padded = dict(tok(["the movie was good", "a very dull and boring story and a weak plot film"], padding=True,
                      return_tensors="pt"))
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]  # the first row is padded
    with torch.no_grad():
        for replace in ([True, False], [False, True], [False, False], [True, True]):
            a, b = model.hybrid_logits(alone, replace), model.hybrid_logits(padded, replace)
            assert torch.allclose(a[0], b[0], atol=1e-5), replace


def test_the_step_counter_follows_optimizer_steps_under_accumulation(tmp_path, teacher4, tiny_data):
    run = build(tmp_path, theseus_text(teacher4, tiny_data, gradient_accumulation_steps=2))
    model = run.model.train()
    batch, _ = first_batch(run)
    rates = []
    for _ in range(5):
        rates.append(model.current_rate())
        model(batch)
    assert rates == pytest.approx([0.3, 0.3, 0.4, 0.4, 0.5])
    assert int(model.heads_state()["_extra_state"]) == 5  # checkpointed with the heads


def test_phase1_trains_end_to_end_and_resumes_exactly(tmp_path, teacher4_drop, tiny_data):
    from transformers import AutoModelForSequenceClassification
    (tmp_path / "t.config").write_text(theseus_text(teacher4_drop, tiny_data))
    summary = train_run(load_config(tmp_path / "t.config"), DistInfo(), str(tmp_path / "full"), do_test=True)
    records = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if "split" not in r]
    assert len(train_losses) == 12 and all(map(torch.isfinite, torch.tensor(train_losses)))
    assert summary["params"] < summary["teacher_params"]
    assert "accuracy" in summary["test"]["metrics"]
    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "full" / "student")
    assert exported.config.num_hidden_layers == 2
    train_run(load_config(tmp_path / "t.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a = load_checkpoint(checkpoints_in(tmp_path / "full")[-1])
    b = load_checkpoint(checkpoints_in(tmp_path / "resumed")[-1])
    assert all(torch.equal(a["student"][k], b["student"][k]) for k in a["student"])
    assert int(a["heads"]["_extra_state"]) == int(b["heads"]["_extra_state"]) == 12
    teacher_layer = load_checkpoint(checkpoints_in(tmp_path / "full")[0])["student"]  # step 3: layers moved
    assert not torch.equal(teacher_layer["bert.encoder.layer.0.output.dense.weight"],
                           a["student"]["bert.encoder.layer.0.output.dense.weight"])


def test_two_stage_pipeline_fine_tunes_the_successor(tmp_path, teacher4, tiny_data):
    from process.pipeline import run_pipeline
    (tmp_path / "phase1.config").write_text(theseus_text(teacher4, tiny_data, epoch=1))
    (tmp_path / "phase2.config").write_text(tiny_config_text(teacher4, tiny_data, "bert_cls",
                                                             model={"pretrained": "set-by-init_from"},
                                                             train={"epoch": 1}))
    (tmp_path / "p.config").write_text("[pipeline]\nstages = phase1, phase2\n[stage.phase1]\nconfig = phase1.config\n"
                                       "do_test = true\n[stage.phase2]\nconfig = phase2.config\ninit_from = phase1\n"
                                       "do_test = true\n")
    summaries = run_pipeline(tmp_path / "p.config", DistInfo(), str(tmp_path / "runs"))
    assert summaries["phase2"]["params"] == summaries["phase1"]["params"]  # the same 2-layer successor
    assert "accuracy" in summaries["phase2"]["test"]["metrics"]
    resolved = (tmp_path / "runs" / "phase2" / "config.ini").read_text()
    assert str(tmp_path / "runs" / "phase1" / "student") in resolved


@pytest.mark.parametrize("theseus,student,message", [
    ({"compress_ratio": 3}, {}, "[theseus] compress_ratio = 3: the teacher's 4 layers do not split into blocks of that many"),
    ({"compress_ratio": 0}, {}, "[theseus] compress_ratio = 0: out of range, expected >= 1"),  # at load time
    ({"replacing_rate": 1.5}, {}, "[theseus] replacing_rate = 1.5: out of range, expected 0..1"),
    ({"replacing_rate": -0.1}, {}, "[theseus] replacing_rate = -0.1: out of range, expected 0..1"),
    ({"scheduler_linear_k": -0.01}, {}, "[theseus] scheduler_linear_k = -0.01: out of range, expected >= 0"),
    ({"steps_for_replacing": -1}, {}, "[theseus] steps_for_replacing = -1: out of range, expected >= 0"),
    ({}, {"init_from": "pretrained"}, "[student] init_from = pretrained: theseus builds its successor from the teacher's layers; set init_from = teacher"),
    ({}, {"num_layers": 3}, "[student] num_layers = 3: theseus' successor has layers / compress_ratio = 4 / 2 = 2 layers"),
    ({}, {"layer_list": "0,1,2"}, "[student] layer_list: 3 layers given, the successor has 4 / 2 = 2"),
])
def test_bad_theseus_configs_fail_on_one_line(tmp_path, teacher4, tiny_data, theseus, student, message):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, theseus_text(teacher4, tiny_data, theseus=theseus, student=student))
    assert str(err.value) == f"{tmp_path / 't.config'}:{line_of(tmp_path / 't.config', theseus or student)}: {message}"


def line_of(path, values):
    key = next(iter(values))
    lines = path.read_text().splitlines()
    section = "[theseus]" if key in ("compress_ratio", "replacing_rate", "scheduler_linear_k", "steps_for_replacing") else "[student]"
    start = lines.index(section)
    return next(i + 1 for i, line in enumerate(lines) if i > start and line.startswith(f"{key} ="))


def test_unknown_scheduler_type_is_a_config_error(tmp_path, teacher4, tiny_data):
    (tmp_path / "t.config").write_text(theseus_text(teacher4, tiny_data, theseus={"scheduler_type": "cosine"}))
    with pytest.raises(ConfigError, match=r"\[theseus\] scheduler_type = 'cosine'"):
        load_config(tmp_path / "t.config")


@pytest.mark.parametrize("task,k", [("SST-2", 0.0006), ("MRPC", 0.0024), ("RTE", 0.0018)])
def test_glue_configs_share_one_budget_and_architecture(task, k):
    """6 -> 3 layers (the paper's ratio); both no-teacher twins train the successor's 3-layer shape for phase 1 +
    phase 2's epochs, one from the fine-tuned teacher's layers, one from the pretrained ones; PKD keeps its own
    2-layer twin for its own epochs."""
    folder = REPO / "config" / "glue" / task
    phase1, phase2 = load_config(folder / "theseus.config"), load_config(folder / "theseus_finetune.config")
    twin = load_config(folder / "theseus_baseline.config")
    pretrained_twin = load_config(folder / "theseus_pretrained_baseline.config")
    assert (phase1.get("model", "model_name"), phase2.get("model", "model_name"), twin.get("model", "model_name"),
            pretrained_twin.get("model", "model_name")) == ("theseus", "bert_cls", "bert_cls", "bert_cls")
    assert phase1.get("theseus", "compress_ratio") == 2 and phase1.get("theseus", "scheduler_type") == "linear"
    assert phase1.get("theseus", "scheduler_linear_k") == k and phase1.get("student", "layer_select") == "first"
    for other in (twin, pretrained_twin):
        assert other.get("train", "epoch") == phase1.get("train", "epoch") + phase2.get("train", "epoch")
        assert (other.get("student", "num_layers"), other.get("student", "layer_select")) == (3, "first")
    assert twin.get("model", "pretrained") == phase1.get("distill", "teacher") == f"runs/glue/{task}/teacher"
    assert pretrained_twin.get("model", "pretrained") == "sentence-transformers/all-MiniLM-L6-v2"
    pkd, pkd_twin = load_config(folder / "pkd.config"), load_config(folder / "pkd_baseline.config")
    assert pkd_twin.get("model", "pretrained") == pkd.get("distill", "teacher") == f"runs/glue/{task}/teacher"
    assert (pkd_twin.get("student", "num_layers"), pkd.get("student", "num_layers")) == (2, 2)
    assert pkd_twin.get("train", "epoch") == pkd.get("train", "epoch")
