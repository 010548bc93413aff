"""General distillation: MLM masking, the mlm_head stage, DistilBERT and MiniLMv2 (losses by hand,
tiny end-to-end runs that resume bitwise, hand-off to task fine-tuning, config errors)."""
import json
import math
import random
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from init.config import load_config
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.train_entry import train_run
from tests.helpers import FILLER, NEG, POS, REPO, tiny_config_text, write_tiny_data, write_tiny_model
from utils.errors import ConfigError

WORDS = FILLER + POS + NEG


def write_text_data(path, n_train=32, n_valid=8, seed=0):
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.txt", n_train), ("valid.txt", n_valid)):
        (path / name).write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 10))) for _ in range(n)) + "\n")
    return path


def config_text(model_dir, data_dir, model_name, **sections):
    """A tiny unlabeled-text run: text_lines data, the mlm formatter and evaluator, checkpoints every 2 steps."""
    base = {"data": {"root": str(data_dir), "train_file": "train.txt", "valid_file": "valid.txt", "max_seq_length": 16,
                     "train_dataset_type": "text_lines", "valid_dataset_type": "text_lines", "formatter_type": "mlm"},
            "model": {"model_name": model_name, "pretrained": str(model_dir)},
            "mlm": {"mask_prob": 0.3},
            "train": {"epoch": 2, "batch_size": 8, "learning_rate": 1e-2, "logging_steps": 1, "keep_last": 100,
                      "save_steps": 2, "eval_every_epoch": "true"},
            "eval": {"batch_size": 8, "latency_batches": 0, "evaluator": "mlm"}, "output": {"tensorboard": "false"}}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return "\n".join(f"[{s}]\n" + "\n".join(f"{k} = {v}" for k, v in kv.items()) for s, kv in base.items()) + "\n"


def run(tmp_path, name, text, checkpoint=None):
    (tmp_path / f"{name}.config").write_text(text)
    summary = train_run(load_config(tmp_path / f"{name}.config"), DistInfo(), str(tmp_path / name), checkpoint)
    return summary, tmp_path / name


def train_losses(logdir, key="loss"):
    return [r[key] for r in map(json.loads, (logdir / "metrics.jsonl").read_text().splitlines()) if "split" not in r]


def final_student(logdir):
    return load_checkpoint(checkpoints_in(logdir)[-1])["student"]


def assert_resumes_bitwise(tmp_path, full, text, name, step=2):
    """Resume a copy of the run from step `step`; it must end with exactly the same student."""
    _, resumed = run(tmp_path, name, text, str(full / "checkpoints" / f"step-{step:07d}.pt"))
    a, b = final_student(full), final_student(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
    return write_text_data(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="module")
def encoder4(tmp_path_factory):
    """A 4-layer random BERT (dropout on) standing in for all-MiniLM-L6-v2: no MLM head, a pooler."""
    return write_tiny_model(tmp_path_factory.mktemp("encoder4"), layers=4)


@pytest.fixture(scope="module")
def head_run(tmp_path_factory, encoder4, text_data):
    """The mlm_head stage on the tiny encoder: (run dir, its config text)."""
    tmp = tmp_path_factory.mktemp("mlm_head")
    text = config_text(encoder4, text_data, "mlm_head")
    _, logdir = run(tmp, "head", text)
    return logdir, text


# ---- masking ---------------------------------------------------------------------------------

def formatter_for(tmp_path, model_dir, mode="train", **mlm):
    from formatter.mlm import MLMFormatter
    (tmp_path / "f.config").write_text(config_text(model_dir, tmp_path, "mlm_head", mlm=mlm or {"mask_prob": 0.15}))
    return MLMFormatter(load_config(tmp_path / "f.config"), mode)


def examples(n, seed=1):
    rng = random.Random(seed)
    return [{"text_a": " ".join(rng.choices(WORDS, k=rng.randint(5, 14))), "text_b": None, "label": None, "index": i}
            for i in range(n)]


def test_masking_rates_specials_and_labels(tmp_path, encoder4):
    fmt = formatter_for(tmp_path, encoder4)
    tok = fmt.tokenizer
    exs = examples(600)
    batch = fmt(exs)
    plain = tok([e["text_a"] for e in exs], padding="longest", return_tensors="pt")
    special = torch.isin(plain["input_ids"], torch.tensor(tok.all_special_ids))
    labels, ids = batch["labels"], batch["input_ids"]
    predicted = labels != -100
    assert not (predicted & special).any()  # [CLS], [SEP], [PAD] are never predicted ...
    assert torch.equal(ids[special], plain["input_ids"][special])  # ... nor changed
    assert torch.equal(labels[predicted], plain["input_ids"][predicted])  # labels = original ids where predicted
    assert torch.equal(ids[~predicted], plain["input_ids"][~predicted])  # everything else untouched
    n_words = (~special).sum(1)
    assert torch.equal(predicted.sum(1), torch.clamp((n_words * 0.15 + 0.5).long(), min=1))  # BERT's round(n * p), >= 1
    chosen_ids = ids[predicted]
    as_mask = (chosen_ids == tok.mask_token_id).float().mean().item()
    kept = (chosen_ids == labels[predicted]).float().mean().item()
    assert 0.75 < as_mask < 0.85 and 0.06 < kept < 0.15 and 0.06 < 1 - as_mask - kept < 0.15  # 80 / 10 / 10
    assert not torch.isin(chosen_ids, torch.tensor([tok.pad_token_id, tok.cls_token_id, tok.sep_token_id])).any()


def test_masking_is_a_function_of_seed_split_and_index(tmp_path, encoder4):
    fmt = formatter_for(tmp_path, encoder4)
    exs = examples(12)
    whole = fmt(exs)
    alone = fmt([exs[5]])  # another batch, other padding: same mask for the same example
    length = alone["input_ids"].shape[1]
    assert torch.equal(whole["input_ids"][5, :length], alone["input_ids"][0])
    assert torch.equal(whole["labels"][5, :length], alone["labels"][0])
    state = torch.get_rng_state()
    torch.manual_seed(123)
    again = fmt(exs)  # the global RNG plays no part, and is not consumed
    assert torch.equal(again["labels"], whole["labels"]) and torch.equal(again["input_ids"], whole["input_ids"])
    torch.set_rng_state(state)
    moved = fmt([dict(e, index=e["index"] + 100) for e in exs])
    assert not torch.equal(moved["labels"], whole["labels"])
    valid = formatter_for(tmp_path, encoder4, mode="valid")(exs)
    assert not torch.equal(valid["labels"], whole["labels"])
    from formatter.mlm import example_seed
    assert example_seed(42, "train", 7) != example_seed(43, "train", 7)
    assert example_seed(42, "train", 7) % 2**32 != example_seed(43, "train", 7) % 2**32  # torch keeps only the low 32 bits


def test_mlm_probability_errors(tmp_path, encoder4):
    with pytest.raises(ConfigError, match=r"\[mlm\] mask_prob = 1.5: out of range, expected 0..1$"):
        formatter_for(tmp_path, encoder4, mask_prob=1.5)
    with pytest.raises(ConfigError) as err:
        formatter_for(tmp_path, encoder4, mask_replace_prob=0.8, random_replace_prob=0.3)
    assert str(err.value) == ("[mlm] mask_replace_prob + random_replace_prob = 1.1: must not exceed 1 "
                              "(the rest of the predicted tokens is kept)")


def test_mlm_evaluator_is_token_weighted():
    from evaluator.mlm import MLMEvaluator
    stats = [[2.0, 1.0, 2.0], [6.0, 0.0, 2.0]]  # CE sums 2 + 6 over 4 tokens; 1 of 4 right
    metrics = MLMEvaluator()(stats, [2, 2])
    assert metrics["mlm_accuracy"] == 0.25 and metrics["mlm_loss"] == 2.0 and metrics["masked_tokens"] == 4
    assert metrics["mlm_perplexity"] == pytest.approx(math.exp(2.0))


# ---- DistilBERT loss composition on tiny tensors -----------------------------------------------

class FixedEncoder(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = nn.Parameter(hidden.clone())

    def forward(self, **inputs):
        return SimpleNamespace(last_hidden_state=self.hidden * 1.0)


class Stub(nn.Module):
    """A 'ForMaskedLM' whose encoder returns fixed hidden states and whose head is the identity (logits = hidden)."""

    def __init__(self, hidden):
        super().__init__()
        self.base_model = FixedEncoder(hidden)
        self.cls = nn.Identity()


def distilbert_with(student_hidden, teacher_hidden, restrict, temperature=2.0, alphas=(5.0, 2.0, 1.0)):
    from model.base import DistillModel
    from model.distilbert import DistilBERT
    model = DistilBERT.__new__(DistilBERT)
    DistillModel.__init__(model)
    model.student = Stub(student_hidden)
    model.set_teacher(Stub(teacher_hidden))
    model.alpha_ce, model.alpha_mlm, model.alpha_cos = alphas
    model.restrict, model.temperature = restrict, temperature
    return model.train()


def test_distilbert_loss_parts_by_hand():
    ln3 = math.log(3.0)
    # one text, 3 positions: 0 masked (gold token 1), 1 a plain token, 2 padding (must not count anywhere)
    s = torch.tensor([[[1.0, 1.0], [1.0, 0.0], [5.0, 5.0]]])
    t = torch.tensor([[[2 * ln3, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    batch = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 0]]),
             "labels": torch.tensor([[1, -100, -100]])}
    out = distilbert_with(s, t, restrict=True)(batch)
    # position 0 at T=2: teacher softmax([ln3, 0]) = [3/4, 1/4], student softmax([.5, .5]) = [1/2, 1/2]
    kl0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert out["loss_ce"].item() == pytest.approx(kl0 * 4, abs=1e-6)  # times T^2
    assert out["loss_mlm"].item() == pytest.approx(math.log(2.0), abs=1e-6)  # CE of [1, 1] at gold 1
    # cosine: position 0 -> 1 - 1/sqrt(2); position 1 orthogonal -> 1; the padded one is left out
    cos = ((1 - 1 / math.sqrt(2)) + 1.0) / 2
    assert out["loss_cos"].item() == pytest.approx(cos, abs=1e-6)
    assert out["loss"].item() == pytest.approx(5 * kl0 * 4 + 2 * math.log(2.0) + cos, abs=1e-5)
    # HF's default (restrict_ce_to_mask false): every non-padding position. Position 1 at T=2: teacher
    # softmax([0, .5]), student softmax([.5, 0]): KL = (b - a) * 0.5 with a = 1/(1+e^.5), b = 1 - a
    a = 1 / (1 + math.exp(0.5))
    kl1 = (1 - 2 * a) * 0.5
    out = distilbert_with(s, t, restrict=False)(batch)
    assert out["loss_ce"].item() == pytest.approx((kl0 + kl1) / 2 * 4, abs=1e-6)
    assert out["loss_mlm"].item() == pytest.approx(math.log(2.0), abs=1e-6)  # still the masked position only


# ---- MiniLMv2 relation loss by hand: heads re-split, widths differ, a padded token ----------------

def relation_rows(x, heads):
    """Hand reference: per relation head, per query, the softmax over the first two keys of x_i . x_j / sqrt(d)."""
    d = len(x[0]) // heads
    rows = {}
    for h in range(heads):
        part = [v[h * d:(h + 1) * d] for v in x]
        for i in range(2):
            scores = [sum(a * b for a, b in zip(part[i], part[j])) / math.sqrt(d) for j in range(2)]
            z = sum(math.exp(v) for v in scores)
            rows[h, i] = [math.exp(v) / z for v in scores]
    return rows


def test_relation_kl_resplit_heads_and_padded_token_by_hand():
    from model.parts.loss import relation_kl_loss
    teacher = [[1.0, 0.0, 0.5, 2.0], [0.0, 1.0, -1.0, 1.0], [9.0, 9.0, 9.0, 9.0]]  # width 4 -> 2 heads of 2
    student = [[0.5, 1.0], [2.0, -1.0], [-9.0, 9.0]]  # width 2 -> 2 heads of 1; token 2 is padding
    pt, ps = relation_rows(teacher, 2), relation_rows(student, 2)
    kl = [sum(p * math.log(p / q) for p, q in zip(pt[key], ps[key])) for key in pt]
    expected = sum(kl) / len(kl)  # mean over 2 relation heads x 2 real queries
    value = relation_kl_loss(torch.tensor([student]), torch.tensor([teacher]), 2, torch.tensor([[1, 1, 0]]))
    assert value.item() == pytest.approx(expected, rel=1e-5)


# ---- end to end: mlm_head, distilbert, minilmv2 ------------------------------------------------

def test_mlm_head_trains_only_the_head_and_resumes(tmp_path, head_run, encoder4):
    logdir, text = head_run
    from transformers import AutoModel, AutoModelForMaskedLM
    exported, info = AutoModelForMaskedLM.from_pretrained(logdir / "student", output_loading_info=True)
    assert not info["missing_keys"]  # the head comes back with the export
    source = AutoModel.from_pretrained(encoder4)
    encoder = exported.bert.state_dict()
    assert all(torch.equal(v, encoder[k]) for k, v in source.state_dict().items() if not k.startswith("pooler."))
    torch.manual_seed(42)  # the run's [train] seed: the head starts as it did in the run
    init = AutoModelForMaskedLM.from_pretrained(encoder4).cls.state_dict()
    trained = {k[len("cls."):]: v for k, v in final_student(logdir).items() if k.startswith("cls.")}
    moved = [k for k in init if not torch.equal(init[k], trained[k])]
    assert sorted(moved) == ["predictions.bias", "predictions.decoder.bias", "predictions.transform.LayerNorm.bias",
                             "predictions.transform.LayerNorm.weight", "predictions.transform.dense.bias",
                             "predictions.transform.dense.weight"]  # all of the head but the tied decoder weight
    pooler = AutoModel.from_pretrained(logdir / "student").pooler.dense.weight  # the source's pooler is carried
    assert torch.equal(pooler, source.pooler.dense.weight)
    losses = train_losses(logdir)
    assert sum(losses[-2:]) < sum(losses[:2])
    valid = [json.loads(l) for l in (logdir / "metrics.jsonl").read_text().splitlines() if '"split"' in l]
    assert [r["step"] for r in valid] == [4, 8] and all(0 <= r["mlm_accuracy"] <= 1 and r["masked_tokens"] > 0 for r in valid)
    # the efficiency report counts the step it ran (one encoder forward, the head on masked rows), not
    # 3 forwards of the whole ForMaskedLM: the formula is scaled down by the measured step
    eff = json.loads((logdir / "train_summary.json").read_text())["efficiency"]
    assert eff["flops_measured_vs_formula"] < 0.5
    assert eff["flops_per_example"] < eff["student_forward_flops_per_example"]
    assert_resumes_bitwise(tmp_path, logdir, text, "head_resumed")


def distilbert_text(head_dir, data_dir, **sections):
    """A 2-layer student made of layers 1 and 3 of the mlm_head export, which is also the teacher."""
    merged = {"student": {"init_from": "teacher", "layer_list": "1, 3"},
              "distill": {"teacher": str(head_dir), "temperature": 2.0}}
    for section, values in sections.items():
        merged[section] = values  # replaced whole: layer_list and init_from = config do not mix
    return config_text(head_dir, data_dir, "distilbert", **merged)


def test_distilbert_trains_resumes_and_hands_off_to_bert_cls(tmp_path, head_run, text_data):
    head_dir = head_run[0]
    text = distilbert_text(head_dir, text_data)
    summary, logdir = run(tmp_path, "distil", text)
    assert summary["params"] < summary["teacher_params"]
    losses = train_losses(logdir)
    assert losses[-1] < losses[0] and all(k in json.loads((logdir / "metrics.jsonl").read_text().splitlines()[0])
                                          for k in ("loss_ce", "loss_mlm", "loss_cos"))
    from transformers import AutoModelForMaskedLM
    student = AutoModelForMaskedLM.from_pretrained(logdir / "student")
    assert student.config.num_hidden_layers == 2
    assert_resumes_bitwise(tmp_path, logdir, text, "distil_resumed")
    # task fine-tuning starts from the general student: a bert_cls stage with [model] pretrained = the export
    tiny_data = write_tiny_data(tmp_path / "glue")
    summary, task_dir = run(tmp_path, "task", tiny_config_text(logdir / "student", tiny_data, train={"epoch": 1}))
    assert summary["best_metric"] is not None
    from pretrained.loading import load_classifier
    task = load_classifier(str(task_dir / "student"), "x")
    assert task.config.num_hidden_layers == 2


def minilm_text(teacher, data_dir, **sections):
    """A random-init 2-layer, 16-wide student (the seed's init_from_student = False) under a 32-wide teacher."""
    merged = {"data": {"valid_file": "", "formatter_type": "hf_tokenizer"}, "distill": {"teacher": str(teacher)},
              "minilmv2": {"num_relation_heads": 4},
              "student": {"init_from": "config", "num_layers": 2, "hidden_size": 16, "num_attention_heads": 2}}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return config_text(teacher, data_dir, "minilmv2", **merged)


def test_minilmv2_trains_resumes_and_hands_off_to_kd(tmp_path, encoder4, text_data):
    text = minilm_text(encoder4, text_data, train={"epoch": 3, "learning_rate": 3e-2})
    summary, logdir = run(tmp_path, "minilm", text)
    losses = train_losses(logdir)
    assert sum(losses[-2:]) < sum(losses[:2])
    assert summary["best_metric"] is None and (logdir / "student" / "config.json").is_file()  # no valid split: final kept
    assert_resumes_bitwise(tmp_path, logdir, text, "minilm_resumed")
    # the task stage: kd from a fine-tuned teacher into the general student ([student] init_from = pretrained)
    tiny_data = write_tiny_data(tmp_path / "glue")
    task_teacher = write_tiny_model(tmp_path / "task_teacher", layers=2)
    task = tiny_config_text(logdir / "student", tiny_data, "kd", distill={"teacher": str(task_teacher)},
                            train={"epoch": 1})
    summary, task_dir = run(tmp_path, "task", task)
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(task_dir / "student").hidden_size == 16 and summary["best_metric"] is not None


# ---- configuration errors ----------------------------------------------------------------------

def build(tmp_path, text):
    from process.init_process import init_all
    (tmp_path / "bad.config").write_text(text)
    with pytest.raises(ConfigError) as err:
        init_all(load_config(tmp_path / "bad.config"), DistInfo(), "train")
    return str(err.value)


def test_minilmv2_config_errors(tmp_path, encoder4, text_data):
    heads = build(tmp_path, minilm_text(encoder4, text_data, minilmv2={"num_relation_heads": 3}))
    assert heads == "[minilmv2] num_relation_heads = 3: must divide the teacher's q/k/v width 32 and the student's 16"
    layer = build(tmp_path, minilm_text(encoder4, text_data, minilmv2={"num_relation_heads": 4, "teacher_layer_index": 4}))
    assert layer == "[minilmv2] teacher_layer_index = 4: BertModel has layers 0..3"
    layer = build(tmp_path, minilm_text(encoder4, text_data, minilmv2={"num_relation_heads": 4, "student_layer_index": -3}))
    assert layer == "[minilmv2] student_layer_index = -3: BertModel has layers 0..1"
    valid = build(tmp_path, minilm_text(encoder4, text_data, data={"valid_file": "valid.txt"}))
    assert valid.endswith("[data] valid_file: minilmv2 has no metric on unlabeled text; leave it empty "
                          "(the final student is kept and exported)")


def test_distilbert_config_errors(tmp_path, head_run, encoder4, text_data):
    no_head = build(tmp_path, distilbert_text(encoder4, text_data))
    assert no_head == (f"[distill] teacher = {encoder4}: has no trained MLM head (cls.predictions.bias missing); "
                       "train one with the mlm_head stage (config/general/mlm_head.config)")
    layers = build(tmp_path, distilbert_text(head_run[0], text_data, student={"init_from": "teacher", "layer_list": "0, 4"}))
    assert layers == "[student] layer_list: layer 4 out of range; the source has layers 0..3"
    width = build(tmp_path, distilbert_text(head_run[0], text_data, student={"init_from": "config", "hidden_size": 16,
                                                                             "num_attention_heads": 2}))
    assert width == ("[student] hidden_size = 16: the cosine loss compares last hidden states, the teacher's are 32 wide; "
                     "use the teacher's width or [distilbert] alpha_cos = 0")


# ---- shipped configs ---------------------------------------------------------------------------

def test_shipped_general_and_task_configs_load():
    from process.pipeline import parse_pipeline
    general = REPO / "config" / "general"
    expect = {"mlm_head": "mlm_head", "distilbert_general": "distilbert", "minilmv2_general": "minilmv2"}
    for name, model in expect.items():
        config = load_config(general / f"{name}.config")
        assert config.get("model", "model_name") == model and config.get("data", "train_dataset_type") == "text_lines"
    assert load_config(general / "minilmv2_general.config").get("data", "valid_file") == ""
    assert [n for n, _ in parse_pipeline(general / "distilbert_pipeline.config")] == ["mlm_head", "distilbert"]
    for task in ("SST-2", "MRPC", "RTE"):
        for method, layers in (("distilbert", [1, 3, 5]), ("minilmv2", [])):
            config = load_config(REPO / "config" / "glue" / task / f"{method}.config")
            assert config.get("model", "model_name") == "kd"
            assert config.get("model", "pretrained") == f"runs/general/{method}/student"
            assert config.get("distill", "teacher") == f"runs/glue/{task}/teacher"
            twin = load_config(REPO / "config" / "glue" / task / f"{method}_baseline.config")
            assert twin.get("model", "model_name") == "bert_cls" and twin.get("data", "task") == task
            assert twin.get("student", "layer_list") == layers


# ---- two processes -----------------------------------------------------------------------------

def test_two_process_gloo_matches_single_process(tmp_path, text_data):
    """2-process DDP runs of distilbert and minilmv2: MiniLMv2's unused pooler does not stall DDP, and the
    ranks mask exactly the tokens one process masks (the gathered validation counts match). Losses match
    only roughly: token-averaged losses are averaged per rank, then over ranks (as in HF's distiller),
    so with uneven token counts per rank they differ slightly from one process's global mean."""
    import os
    import subprocess
    import sys
    encoder = write_tiny_model(tmp_path / "enc", layers=4, dropout=0.0)  # dropout off: both runs compute the same function
    head_dir = run(tmp_path, "head", config_text(encoder, text_data, "mlm_head", train={"epoch": 1}))[1]
    texts = {"distil": distilbert_text(head_dir, text_data), "minilm": minilm_text(encoder, text_data)}
    for name, text in texts.items():  # the DDP side: both stages of one pipeline, so one torchrun launch
        (tmp_path / f"{name}.config").write_text(text.replace("batch_size = 8", "batch_size = 4", 1))
    (tmp_path / "ddp.config").write_text("[pipeline]\nstages = distil, minilm\n[stage.distil]\nconfig = distil.config\n"
                                         "[stage.minilm]\nconfig = minilm.config\n")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "train.py"), "--config", str(tmp_path / "ddp.config"), "--distributed",
                           "--logdir", str(tmp_path / "ddp")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = lambda d: [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if '"split"' in l]
    for name, text in texts.items():
        one, two = train_losses(run(tmp_path, f"{name}1", text)[1]), train_losses(tmp_path / "ddp" / name)
        assert len(one) == len(two) == 8 and all(math.isfinite(x) for x in two)
        assert abs(one[0] - two[0]) < 0.1 * one[0]  # same weights, same masks: only the averaging differs
        assert [(r["examples"], r.get("masked_tokens")) for r in rows(tmp_path / f"{name}1")] == \
               [(r["examples"], r.get("masked_tokens")) for r in rows(tmp_path / "ddp" / name)]
        assert (tmp_path / "ddp" / name / "student" / "config.json").is_file()


# ---- FLOPs of one training step (efficiency/perf.py: train_step_flops) ------------------------------

def first_train_batch(tmp_path, text):
    from process.init_process import init_all
    (tmp_path / "flops.config").write_text(text)
    run = init_all(load_config(tmp_path / "flops.config"), DistInfo(), "train")
    return run.model, next(iter(run.loaders["train"]))


def layer_flops(length, hidden, inner):
    """One BERT layer, by hand: q, k, v, output (4 L H^2 multiply-adds), q k^T and A v (2 L^2 H), FFN (2 L H I)."""
    return 2 * (4 * length * hidden * hidden + 2 * length * length * hidden + 2 * length * hidden * inner)


def test_mlm_head_step_counts_the_frozen_encoder_once_and_the_head_on_masked_rows(tmp_path, encoder4, text_data):
    """The encoder runs under no_grad (forward only); the head runs on the masked rows, backward through its
    transform's weight and the tied decoder's input only. The step must leave model, grads and RNG untouched."""
    from efficiency.perf import train_step_flops
    model, batch = first_train_batch(tmp_path, config_text(encoder4, text_data, "mlm_head"))
    (b, length), masked = batch["input_ids"].shape, int((batch["labels"] != -100).sum())
    hidden, vocab = 32, model.student.config.vocab_size
    head = 2 * hidden * hidden + 2 * hidden * vocab  # transform dense + decoder, per row
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    flops = train_step_flops(model, batch)
    assert flops == b * 4 * layer_flops(length, hidden, 64) + masked * head + masked * head
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_distilbert_step_counts_the_head_on_the_rows_it_matches(tmp_path, head_run, text_data):
    """Student (2 layers) forward + backward, teacher (4 layers) forward; both heads on the masked rows only
    with restrict_ce_to_mask, on every token (padding included: the rows are the attention mask's) without."""
    from efficiency.perf import train_step_flops
    hidden, inner = 32, 64
    for restrict in ("true", "false"):
        text = distilbert_text(head_run[0], text_data, distilbert={"restrict_ce_to_mask": restrict})
        model, batch = first_train_batch(tmp_path, text)
        vocab = model.student.config.vocab_size
        (b, length) = batch["input_ids"].shape
        rows = int((batch["labels"] != -100).sum()) if restrict == "true" else int(batch["attention_mask"].sum())
        head = 2 * hidden * hidden + 2 * hidden * vocab
        student = b * 2 * layer_flops(length, hidden, inner) + rows * head
        teacher = b * 4 * layer_flops(length, hidden, inner) + rows * head
        assert train_step_flops(model, batch) == 3 * student + teacher


def test_every_other_is_sanh_extraction(tmp_path):
    """layer_select = every_other copies teacher layers 0, 2, 4 into student layers 0, 1, 2, as HF's
    extract_distilbert.py does (compressed_sd[layer std_idx] = state_dict[layer teacher_idx], std_idx += 1)."""
    from model.parts.layer_map import select_layers
    from model.parts.student import build_student
    from pretrained.loading import load_masked_lm
    teacher_dir = write_tiny_model(tmp_path / "t6", layers=6, dropout=0.0)
    config = load_config(REPO / "config" / "general" / "distilbert_general_every_other.config")
    assert select_layers(6, 3, config.get("student", "layer_select"), config.get("student", "layer_list")) == [0, 2, 4]
    assert select_layers(12, 6, "every_other") == [0, 2, 4, 6, 8, 10]
    teacher = load_masked_lm(str(teacher_dir), "teacher")
    student = build_student(config, None, teacher, load=load_masked_lm)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for std_idx, teacher_idx in enumerate([0, 2, 4]):
        prefix_s, prefix_t = f"bert.encoder.layer.{std_idx}.", f"bert.encoder.layer.{teacher_idx}."
        names = [k[len(prefix_t):] for k in t_state if k.startswith(prefix_t)]
        assert names and all(torch.equal(s_state[prefix_s + n], t_state[prefix_t + n]) for n in names)
    assert student.config.num_hidden_layers == 3
    with pytest.raises(ConfigError, match=r"every_other: 4 layers 0, 2, 4, \.\.\. need a source of at least 7 layers, it has 6"):
        select_layers(6, 4, "every_other")
