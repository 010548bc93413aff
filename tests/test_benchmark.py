"""The benchmark harness (docs/PERFORMANCE.md) on tiny models (so it cannot rot), length-grouped batches, the kd_hidden
benchmark method, and the efficiency report written after train and test runs."""
import json
import random

import pytest
import torch

from init.config import load_config
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.sampler import ResumableSampler, grouped_by_length
from process.train_entry import train_run
from tests.helpers import tiny_config_text, write_tiny_data, write_tiny_model
from utils.errors import ConfigError


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    teacher = write_tiny_model(root / "teacher", layers=4, dropout=0.0, seed=1)
    source = write_tiny_model(root / "source", layers=2, seed=2)
    data = write_tiny_data(root / "data", n_train=160, n_dev=32)
    return teacher, source, data


def test_tiny_benchmark_prints_table_and_writes_json(tmp_path, bench_inputs, capsys):
    from benchmarks.run import main
    teacher, source, data = bench_inputs
    out = main(["--inprocess", "--threads", "1", "--warmup", "1", "--window", "2", "--windows", "2",
                "--teacher", str(teacher), "--student_source", str(source), "--train", str(data / "train.tsv"),
                "--dev", str(data / "dev.tsv"), "--tools", "framework,plain", "--no_ddp", "--inference_batches", "3",
                "--target_acc", "0", "--accuracy_seeds", "1", "--extras", "full_last_layer",
                "--out", str(tmp_path / "bench.json")])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["job"]["steps"] == 5 and saved["job"]["pairs"] == [[1, 2], [2, 4]]  # 4 -> 2 layers: 1,2 <- 2,4
    runs = [r for r in saved["results"] if r["tool"] in ("framework", "plain")]
    assert {(r["tool"], r["mode"], r["loss"], r["tag"]) for r in runs} == {
        (t, m, l, None) for t in ("framework", "plain") for m in ("as_shipped", "same_batches") for l in ("kd", "kd_hidden")
    } | {("framework", "as_shipped", "kd", "no_cache")} | {(t, "as_shipped", "kd_hidden", "seed43") for t in ("framework", "plain")} \
        | {("framework", "same_batches", "kd", "full_last_layer")}
    for r in runs:
        assert "error" not in r, r
        assert r["steps"] == 5 and len(r["windows"]) == 2 and r["examples_per_s"] > 0, r
        assert 0 <= r["dev_accuracy"] <= 100 and r["peak_rss_mb"] > 0
        assert [c[0] for c in r["dev_curve"]] == [2, 4] and r["dev_curve"][-1][2] == r["dev_accuracy"]
        assert r["steps_to_target"] == 2 and r["time_to_target_s"] == r["dev_curve"][0][1]  # target 0: the first probe
        assert 0 < r["end_to_end_examples_per_s"]
    fw = [r for r in runs if r["tool"] == "framework"]
    assert all(r["mean_padded_length"] == 64 for r in fw if r["mode"] == "same_batches")
    assert all(0 < r["mean_padded_length"] < 64 for r in fw if r["mode"] == "as_shipped")  # dynamic padding
    cached = [r["teacher_cached"] for r in fw if r["mode"] == "as_shipped" and r["loss"] == "kd"]
    assert sorted(cached) == [False, True]  # the default caches logits; the no_cache job does not
    assert [r["tag"] for r in fw if not r["cls_only_last_layer"]] == ["full_last_layer"]  # on by default
    assert {"teacher", "student"} <= set(saved["inference"]) and saved["inference"]["student"]["latency_ms_b1"] > 0
    names = [t["target"] for t in saved["targets"]]
    assert any("mean of 2 seeds" in n for n in names)
    assert len(names) == 10 and any("same batches" in n for n in names) and any("time to" in n for n in names)
    table = capsys.readouterr().out
    assert "| mode | loss | tool | examples/s (median)" in table and table.count("| KD-Worker") >= 5
    assert out["markdown"] == saved["markdown"]


def test_step_clock_takes_probe_time_off_the_clock():
    import time
    from benchmarks.common import StepClock
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    accuracies = iter([40.0, 60.0, 80.0])

    def slow_probe():
        time.sleep(0.3)
        return next(accuracies)

    clock = StepClock(optimizer, slow_probe, 2, offset_s=5.0)
    for _ in range(6):
        optimizer.step()
    assert [c[0] for c in clock.curve] == [2, 4, 6] and [c[2] for c in clock.curve] == [40.0, 60.0, 80.0]
    assert clock.times[-1] - clock.times[0] < 0.25  # 0.9 s of probing is not training time
    seconds, step = clock.time_to(55.0)
    assert step == 4 and 5.0 <= seconds < 5.25  # the cache-build offset counts towards time-to-target
    assert clock.time_to(90.0) == (None, None)


def test_step_profile_bounds_the_same_batches_gain(bench_inputs):
    from benchmarks.step_profile import main
    teacher, source, data = bench_inputs
    out = main(["--threads", "1", "--repeats", "2", "--teacher", str(teacher), "--student_source", str(source),
                "--train", str(data / "train.tsv")])
    step, default = out["teacher_and_student_forward_backward_ms"], out["clip_and_adamw_default_step_ms"]
    assert 0 < out["teacher_forward_ms"] and 0 < default
    assert out["ceiling_same_batches_speedup"] == round((step + default) / step, 3)


def test_benchmark_skips_cleanly_without_data(tmp_path):
    from benchmarks.run import main
    out = main(["--train", str(tmp_path / "none.tsv"), "--out", str(tmp_path / "b.json")])
    assert "not found: benchmark skipped" in out["skipped"]


def test_length_grouping_keeps_every_example_once_and_groups_lengths():
    lengths = [random.Random(i).randint(1, 100) for i in range(1000)]
    indices = list(range(1000))
    random.Random(0).shuffle(indices)
    grouped = grouped_by_length(indices, lengths, 8, torch.Generator().manual_seed(0), pool_batches=10)
    assert sorted(grouped) == list(range(1000))
    spread = lambda order: sum(max(lengths[i] for i in order[k:k + 8]) for k in range(0, len(order), 8))
    assert spread(grouped) < 0.75 * spread(indices)  # far less padding: batches of similar lengths
    # pools stay pools: the first 80 indices are a permutation of the first 80 shuffled ones
    assert sorted(grouped[:80]) == sorted(indices[:80])


@pytest.mark.parametrize("world", [1, 2])
def test_grouped_sampler_is_a_partition_per_epoch_and_resumes_mid_epoch(world):
    data = list(range(203))
    lengths = [(i * 37) % 50 for i in data]
    for epoch in (0, 1):
        seen = []
        for rank in range(world):
            sampler = ResumableSampler(data, world, rank, True, 7, lengths, batch_size=4)
            sampler.set_epoch(epoch)
            full = list(sampler)
            again = ResumableSampler(data, world, rank, True, 7, lengths, batch_size=4)
            again.set_epoch(epoch)
            again.skip(12)
            assert list(again) == full[12:]  # a resumed run sees exactly the batches it missed
            seen += full
        assert set(seen) == set(data) and len(seen) == sampler.total_size  # DistributedSampler pads to a multiple


def test_grouped_batches_under_ddp_are_shares_of_the_single_process_batches():
    data = list(range(104))  # a multiple of the global batch: no DistributedSampler padding
    lengths = [(i * 13) % 40 for i in data]
    one = ResumableSampler(data, 1, 0, True, 3, lengths, batch_size=8)
    ranks = [ResumableSampler(data, 2, r, True, 3, lengths, batch_size=4) for r in range(2)]
    for s in [one] + ranks:
        s.set_epoch(1)
    full, parts = list(one), [list(s) for s in ranks]
    for k in range(len(parts[0]) // 4):
        assert sorted(parts[0][4 * k:4 * k + 4] + parts[1][4 * k:4 * k + 4]) == sorted(full[8 * k:8 * k + 8])


def kd_hidden_text(teacher, data, **train):
    return tiny_config_text(teacher, data, "kd_hidden", student={"init_from": "teacher", "num_layers": 2},
                            distill={"teacher": str(teacher)}, kd_hidden={"hidden_weight": 2.0},
                            data={"group_by_length": "true"},  # the default (tests/helpers.py turns it off)
                            train=dict({"epoch": 2, "save_steps": 3}, **train))


def test_kd_hidden_loss_is_kd_plus_weighted_masked_hidden_mse(tmp_path, bench_inputs):
    from process.init_process import init_all
    teacher, _, data = bench_inputs
    (tmp_path / "k.config").write_text(kd_hidden_text(teacher, data))
    run = init_all(load_config(tmp_path / "k.config"), DistInfo(), "train")
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    torch.manual_seed(0)
    out = model(batch)
    # by hand, with dropout off in both (tiny teacher written with dropout 0; its layers are the student's)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    s = model.student(**inputs, output_hidden_states=True)
    t = model.teacher(**inputs, output_hidden_states=True)
    mask = batch["attention_mask"].float()
    mse = 0.0
    for si, ti in ((1, 2), (2, 4)):  # uniform map 4 -> 2: student layers 0,1 <- teacher layers 1,3
        per_token = ((s.hidden_states[si] - t.hidden_states[ti]) ** 2).mean(-1)
        mse = mse + (per_token * mask).sum() / mask.sum()
    p_t = torch.softmax(t.logits, -1)
    kd = (p_t * (p_t.log() - torch.log_softmax(s.logits, -1))).sum(-1).mean()
    assert out["loss_hidden"].item() == pytest.approx(mse.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((kd + 2.0 * mse).item(), rel=1e-5)


def test_kd_hidden_rejects_a_student_of_another_width(tmp_path, bench_inputs):
    from process.init_process import init_all
    teacher, _, data = bench_inputs
    wide = write_tiny_model(tmp_path / "wide", layers=2, hidden=48, heads=2)
    text = tiny_config_text(wide, data, "kd_hidden", distill={"teacher": str(teacher)})
    (tmp_path / "k.config").write_text(text)
    with pytest.raises(ConfigError, match=r"kd_hidden: student width 48 differs from the teacher's 32"):
        init_all(load_config(tmp_path / "k.config"), DistInfo(), "train")


def test_kd_hidden_trains_resumes_bitwise_and_reports_efficiency(tmp_path, bench_inputs):
    teacher, _, data = bench_inputs
    (tmp_path / "k.config").write_text(kd_hidden_text(teacher, data, epoch=1))
    summary = train_run(load_config(tmp_path / "k.config"), DistInfo(), str(tmp_path / "full"), do_test=True)
    train_run(load_config(tmp_path / "k.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a = load_checkpoint(checkpoints_in(tmp_path / "full")[-1])["student"]
    b = load_checkpoint(checkpoints_in(tmp_path / "resumed")[-1])["student"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    eff = summary["efficiency"]
    assert eff["student_params"] < eff["teacher_params"] and 0 < eff["mean_padded_length"] <= 16
    assert eff["flops_per_example"] == 3 * eff["student_forward_flops_per_example"] + eff["teacher_forward_flops_per_example"]
    assert eff["flops_measured_vs_formula"] == 1  # a measured step of the last batch: exactly the formula here
    assert eff["examples_per_s"] > 0 and 0 < eff["fraction_of_peak"] < 2 and eff["peak_matmul_flops_per_s"] > 1e8
    # on CPU the fraction is taken per CPU second on both sides, and the loop's share of the cores is reported
    assert eff["fraction_of_peak"] == pytest.approx(eff["achieved_flops_per_cpu_s"] / eff["peak_matmul_flops_per_cpu_s"],
                                                    abs=1e-4)
    assert 0 < eff["cpu_share"] <= 1.5
    assert eff["latency_ms"] > 0 and eff["teacher_latency_ms"] > 0
    results = json.loads((tmp_path / "full" / "results.json").read_text())["efficiency"]
    assert not eff["cls_only_last_layer"]  # kd_hidden matches the last layer's every token
    # evaluation needs logits only: its last layer ran for [CLS] alone (tests/test_cls_only.py has the arithmetic)
    assert results["cls_only_last_layer"] and results["examples_per_s"] > 0
    assert results["flops_per_example"] < results["student_forward_flops_per_example"]
    saved = json.loads((tmp_path / "full" / "train_summary.json").read_text())
    assert saved["efficiency"]["flops_per_example"] == eff["flops_per_example"]
    # resumed after its last step (a queue rerunning a finished job): no step runs, the measured block stays
    again = train_run(load_config(tmp_path / "k.config"), DistInfo(), str(tmp_path / "full"), str(tmp_path / "full"))
    assert again["steps"] == summary["steps"] and again["efficiency"] == saved["efficiency"]
    assert json.loads((tmp_path / "full" / "train_summary.json").read_text())["efficiency"] == saved["efficiency"]


def test_flops_of_a_tiny_bert_match_the_analytic_count(bench_inputs):
    from transformers import AutoModelForSequenceClassification
    from efficiency.flops import encoder_flops
    from efficiency.perf import forward_flops
    model = AutoModelForSequenceClassification.from_pretrained(bench_inputs[0])
    # encoder matmuls + pooler (1 x H x H) + classifier (1 x H x labels), multiply-add = 2
    expected = encoder_flops(model.config, 10) + 2 * 32 * 32 + 2 * 32 * 2
    assert forward_flops(model, 10) == expected


def test_compile_key_compiles_in_place_and_keeps_parameter_names(tmp_path, bench_inputs):
    from process.init_process import init_all
    from process.train_process import maybe_compile
    teacher, _, data = bench_inputs
    (tmp_path / "k.config").write_text(kd_hidden_text(teacher, data, compile="true"))
    run = init_all(load_config(tmp_path / "k.config"), DistInfo(), "train")
    names = set(run.model.trainable_state()["student"])
    maybe_compile(run)  # compiles lazily: nothing runs here, so this stays fast
    assert run.compiled and set(run.model.trainable_state()["student"]) == names
