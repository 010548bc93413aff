"""experiments/retention_runs.py: the job graph (names, dependencies, what each command trains), its one-line errors,
the configs it ships, the table's arguments, and (slow, with all-mpnet-base-v2 installed) a teacher and a student."""
import json
import subprocess
import sys

import pytest

from experiments import compare_full, retention_runs, retention_table
from init.config import load_config
from model.parts.layer_map import select_layers
from tests.helpers import NEG, POS, REPO, job_config

SCRIPT = [sys.executable, str(REPO / "experiments" / "retention_runs.py")]
STUDENTS = ("cut6_kd", "cut6_twin", "cut4_kd", "cut4_twin", "minilm_kd", "minilm_twin", "tiny4_kd", "tiny4_twin")


def dry(*args):
    done = subprocess.run(SCRIPT + ["--dry", *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return [line.split(" <- ", 1)[0] for line in done.stdout.splitlines()], {
        name: (deps.split(" | ", 1)[0], deps.split(" | ", 1)[1]) for name, deps in
        (line.split(" <- ", 1) for line in done.stdout.splitlines())}


def test_dry_graph_of_one_task_and_two_seeds(tmp_path):
    order, graph = dry("--tasks", "MRPC", "--seeds", "7", "8", "--root", str(tmp_path))
    training = ["MRPC_teacher", "general_tinybert"] + [f"s{s}_MRPC_{run}" for s in (7, 8) for run in STUDENTS]
    timed = ["MRPC_teacher"] + [f"s7_MRPC_{run}" for run in STUDENTS]  # the first seed's runs only
    untimed = [f"s8_MRPC_{run}" for run in STUDENTS]  # the other seeds: re-tested in fp32, not timed
    assert order == training + [f"latency_{name}" for name in timed] + [f"fp32_{name}" for name in untimed]
    deps = {name: graph[name][0] for name in order}
    for seed in (7, 8):
        s = f"s{seed}_MRPC_"
        for run in ("cut6_kd", "cut4_kd", "minilm_kd"):
            assert deps[s + run] == "MRPC_teacher"
        assert deps[s + "tiny4_kd"] == "MRPC_teacher,general_tinybert"
        for run in ("cut6_twin", "cut4_twin", "minilm_twin"):
            assert deps[s + run] == "-"  # the twins never wait for (nor see) the teacher
        assert deps[s + "tiny4_twin"] == "general_tinybert"
    assert deps["MRPC_teacher"] == deps["general_tinybert"] == "-"
    assert deps["latency_MRPC_teacher"] == ",".join(training)  # after every training job
    for before, after in zip(timed, timed[1:]):
        assert deps[f"latency_{after}"] == f"latency_{before}"  # then one at a time
    latency = graph["latency_s7_MRPC_cut4_kd"][1]
    assert latency.split()[1:] == ["test.py", "--checkpoint", str(tmp_path / "s7" / "MRPC" / "cut4_kd"), "--logdir",
                                   str(tmp_path / "latency" / "s7" / "MRPC" / "cut4_kd"), "--set",
                                   "eval.latency_batches=50", "--set", "train.precision=fp32"]
    assert "--gpu" not in latency
    for name in untimed:  # after the last timing, two at a time under --jobs 2: nothing is timed any more
        assert deps[f"fp32_{name}"] == f"latency_{timed[-1]}"
    assert graph["fp32_s8_MRPC_cut4_kd"][1].split()[1:] == [
        "test.py", "--checkpoint", str(tmp_path / "s8" / "MRPC" / "cut4_kd"), "--logdir",
        str(tmp_path / "latency" / "s8" / "MRPC" / "cut4_kd"), "--set", "eval.latency_batches=0", "--set",
        "train.precision=fp32"]


def test_each_run_trains_the_student_it_names(tmp_path):
    jobs = {j.name: j for j in retention_runs.task_jobs(tmp_path, "CoLA", [3], 4, 500)}
    teacher, tiny = str(tmp_path / "teachers" / "CoLA"), str(tmp_path / "general" / "tinybert")
    expected = {  # model_name, pretrained, init_from, num_layers, layer_select, teacher, learning rate
        "CoLA_teacher": ("bert_cls", "all-mpnet-base-v2", "pretrained", 0, "uniform", "", 2e-5),
        "s3_CoLA_cut6_kd": ("kd", "all-mpnet-base-v2", "teacher", 6, "uniform", teacher, 2e-5),
        "s3_CoLA_cut6_twin": ("bert_cls", "all-mpnet-base-v2", "pretrained", 6, "uniform", "", 2e-5),
        "s3_CoLA_cut4_kd": ("kd", "all-mpnet-base-v2", "teacher", 4, "uniform", teacher, 2e-5),
        "s3_CoLA_cut4_twin": ("bert_cls", "all-mpnet-base-v2", "pretrained", 4, "uniform", "", 2e-5),
        "s3_CoLA_minilm_kd": ("kd", "sentence-transformers/all-MiniLM-L6-v2", "pretrained", 0, "first", teacher, 1e-4),
        "s3_CoLA_minilm_twin": ("bert_cls", "sentence-transformers/all-MiniLM-L6-v2", "pretrained", 0, "uniform", "", 1e-4),
        "s3_CoLA_tiny4_kd": ("kd", tiny, "pretrained", 0, "first", teacher, 1e-4),
        "s3_CoLA_tiny4_twin": ("bert_cls", tiny, "pretrained", 0, "uniform", "", 1e-4),
    }
    assert set(jobs) == set(expected)
    for name, want in expected.items():
        config = job_config(jobs[name])
        got = (config.get("model", "model_name"), config.get("model", "pretrained"), config.get("student", "init_from"),
               config.get("student", "num_layers"), config.get("student", "layer_select"),
               config.get("distill", "teacher") if config.get("model", "model_name") == "kd" else "",
               config.get("train", "learning_rate"))
        assert got == want, name
        assert config.get("data", "max_examples") == 500 and config.get("data", "heldout_every") == 10, name
        assert config.get("train", "epoch") == (3 if name == "CoLA_teacher" else 4), name  # the teacher: its config's
    assert select_layers(12, 6, "uniform") == [1, 3, 5, 7, 9, 11] and select_layers(12, 4, "uniform") == [2, 5, 8, 11]
    general = job_config(retention_runs.general_job(tmp_path, 123))
    assert (general.get("model", "model_name"), general.get("tinybert", "stage"), general.get("student", "init_from"),
            general.get("student", "num_layers"), general.get("student", "hidden_size"),
            general.get("student", "num_attention_heads"), general.get("student", "intermediate_size"),
            general.get("distill", "teacher"), general.get("model", "pretrained"), general.get("train", "max_steps")) == (
        "tinybert", "general", "config", 4, 312, 12, 1200, "all-mpnet-base-v2", "all-mpnet-base-v2", 123)


def test_subsets_epochs_and_overrides_reach_the_right_runs(tmp_path):
    _, graph = dry("--tasks", "SST-2", "MRPC", "--seeds", "1", "--root", str(tmp_path), "--epochs", "MRPC=5",
                   "--max_examples", "MRPC=300", "--general_steps", "40", "--override", "cut4_kd:distill.hard_weight=0")
    assert "data.max_examples=8000" in graph["SST-2_teacher"][1] and "data.max_examples=300" in graph["MRPC_teacher"][1]
    assert "train.epoch=5" in graph["s1_MRPC_cut6_twin"][1] and "train.epoch=3" in graph["s1_SST-2_cut6_twin"][1]
    assert "train.max_steps=40" in graph["general_tinybert"][1]
    assert graph["s1_MRPC_cut4_kd"][1].endswith("--set distill.hard_weight=0")
    assert not any("hard_weight" in cmd for name, (_, cmd) in graph.items() if not name.endswith("_cut4_kd"))


def test_bf16_reaches_every_training_job_and_latency_is_timed_in_fp32(tmp_path):
    _, graph = dry("--tasks", "MRPC", "--seeds", "1", "--root", str(tmp_path), "--precision", "bf16",
                   "--override", "cut4_kd:train.epoch=1")
    for name, (_, cmd) in graph.items():
        if name.startswith(("latency_", "fp32_")):
            assert cmd.endswith("--set train.precision=fp32") and "precision=bf16" not in cmd, name  # as deployed
        else:
            assert "--set train.precision=bf16" in cmd, name
    assert graph["s1_MRPC_cut4_kd"][1].endswith("--set train.epoch=1")  # an override still comes last
    _, plain = dry("--tasks", "MRPC", "--seeds", "1", "--root", str(tmp_path))
    assert not any("precision=bf16" in cmd for _, cmd in plain.values())


@pytest.mark.parametrize("extra, message", [
    (["--only", "s1_MRPC_cut4kd"], "--only s1_MRPC_cut4kd: no such job (see --dry for the job names)"),
    (["--override", "cut4kd:train.epoch=1"], "--override cut4kd:train.epoch=1: no run 'cut4kd' in this graph"),
    (["--override", "cut4_kd"], "--override cut4_kd: expected RUN:KEY=VALUE"),
    (["--epochs", "MRPC=two"], "--epochs MRPC=two: expected TASK=N with a whole N >= 1"),
    (["--max_examples", "RTE=100"], "--max_examples RTE=100: expected TASK=N, TASK one of SST-2, MRPC, CoLA"),
    (["--general_steps", "0"], "--general_steps 0: expected a step count >= 1"),
    (["--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
    (["--extra", "cut6_kd_transfer=cut6_twin"], "--extra: only with --table (the graph never runs those runs)"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path, extra, message):
    done = subprocess.run(SCRIPT + ["--tasks", "MRPC", "--seeds", "1", "--root", str(tmp_path), "--dry", *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr


def test_the_shipped_configs_load_with_the_mpnet_settings():
    for task in retention_runs.TASKS:
        c = REPO / "config" / "glue" / task
        teacher, kd, twin = (load_config(c / f"{name}.config") for name in ("mpnet_teacher", "mpnet_kd", "mpnet_kd_baseline"))
        minilm = load_config(c / "teacher.config")
        for config in (teacher, kd, twin):
            assert config.get("data", "task") == task and config.get("model", "pretrained") == "all-mpnet-base-v2"
            assert config.get("data", "max_seq_length") == minilm.get("data", "max_seq_length")  # the task's lengths
            assert (config.get("train", "learning_rate"), config.get("train", "epoch")) == (2e-5, 3)
        assert minilm.get("train", "learning_rate") == 1e-4  # what the small teacher keeps
        assert kd.get("distill", "teacher") == f"runs/glue/{task}/mpnet_teacher"
        assert (kd.get("student", "init_from"), twin.get("student", "init_from")) == ("teacher", "pretrained")
        assert kd.get("student", "num_layers") == twin.get("student", "num_layers") == 6
    for name in ("kd_teacher_layers", "pretrained_layers_baseline"):
        assert load_config(REPO / "config" / "methods" / f"{name}.config").get("student", "layer_select") == "uniform"
    assert load_config(REPO / "config" / "general" / "tinybert_general_mpnet.config").get("student", "hidden_size") == 312


def write_run(path, accuracy, params, latency=None):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"metrics": {"accuracy": accuracy}, "params": params,
                                                   "latency_ms": latency}))


def test_table_takes_the_latency_pass_where_it_ran_and_leaves_out_unfinished_runs(tmp_path, capsys):
    root = tmp_path
    write_run(root / "teachers" / "MRPC", 0.80, 1000)
    write_run(root / "latency" / "teachers" / "MRPC", 0.80, 1000, 40.0)
    for seed, kd, twin in ((1, 0.78, 0.70), (2, 0.74, 0.72)):
        write_run(root / f"s{seed}" / "MRPC" / "cut6_kd", kd, 500)
        write_run(root / f"s{seed}" / "MRPC" / "cut6_twin", twin, 500)
    write_run(root / "latency" / "s1" / "MRPC" / "cut6_kd", 0.78, 500, 20.0)
    write_run(root / "latency" / "s1" / "MRPC" / "cut6_twin", 0.70, 500, 25.0)
    write_run(root / "s1" / "MRPC" / "cut4_kd", 0.75, 300)  # its twin has not finished: no gain column for it
    argv = retention_runs.table_argv(root, "MRPC", [1, 2])
    mrpc = lambda seed, run: str((root / "latency" if seed == 1 else root) / f"s{seed}" / "MRPC" / run)
    assert argv == ["--teacher", str(root / "latency" / "teachers" / "MRPC"),
                    "--row", f"cut6_kd={mrpc(1, 'cut6_kd')},{mrpc(2, 'cut6_kd')}",
                    "--row", f"cut6_twin={mrpc(1, 'cut6_twin')},{mrpc(2, 'cut6_twin')}",
                    "--row", f"cut4_kd={root / 's1' / 'MRPC' / 'cut4_kd'}", "--twin=cut6_kd=cut6_twin",
                    f"--paper=cut6_kd={retention_runs.PAPERS['cut6_kd']}", "--plot", str(root / "retention_MRPC.png")]
    assert "MRPC cut4_twin: no finished run yet, left out" in capsys.readouterr().err
    retention_table.main(argv)
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()}
    # kd 78, 74: mean 76, std sqrt(2^2 + 2^2) = 2.83, kept (78 + 74) / 2 / 80; twin 70, 72: 71, kd ahead in both
    # seeds (78 > 70, 74 > 72); 40 ms / 20 ms
    assert rows["cut6_kd"] == ("| cut6_kd | 500 | 20.00 | 2.00x | 76.00 ± 2.83 | 95.0% | 2 | +5.00 vs cut6_twin, "
                               "ahead 2/2 | "
                               "DistilBERT 6 x 768: 97% of BERT-base's GLUE score at 1.6x (Sanh et al. 2019) |")
    assert rows["cut4_kd"] == "| cut4_kd | 300 | - | - | 75.00 | 93.8% | 1 | - |  |"


def test_table_mode_prints_one_table_per_task(tmp_path):
    write_run(tmp_path / "teachers" / "CoLA", 0.50, 1000, 10.0)
    write_run(tmp_path / "s1" / "CoLA" / "tiny4_kd", 0.40, 100, 2.0)
    done = subprocess.run(SCRIPT + ["--table", "--tasks", "CoLA", "--seeds", "1", "--root", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "## CoLA" in done.stdout and "$ python experiments/retention_table.py --teacher" in done.stdout
    assert ("| tiny4_kd | 100 | 2.00 | 5.00x | 40.00 | 80.0% | 1 | - | TinyBERT4 4 x 312: 96.8% of BERT-base at 9.4x "
            "(Jiao et al. 2020) |") in done.stdout
    assert (tmp_path / "retention_CoLA.png").is_file()


def mpnet_params(layers, labels=2):
    """all-mpnet-base-v2's classifier by hand: embeddings (30527 words, 514 positions, LayerNorm), per layer q/k/v/o,
    feed-forward 768 -> 3072 -> 768 and two LayerNorms, the relative position bias (32 buckets x 12 heads), and the
    head (dense 768 x 768, out 768 x labels)."""
    embeddings = 30527 * 768 + 514 * 768 + 2 * 768
    layer = 4 * (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768) + 2 * 2 * 768
    return embeddings + layers * layer + 32 * 12 + (768 * 768 + 768) + (768 * labels + labels)


@pytest.mark.slow
def test_a_teacher_and_its_4_layer_student_end_to_end(tmp_path, monkeypatch):
    from pretrained.mpnet_parts import SETUP, mpnet_model_dir
    if not (mpnet_model_dir() / "config.json").is_file():
        pytest.skip(f"all-mpnet-base-v2 not installed in {mpnet_model_dir()} ({SETUP})")
    data = tmp_path / "data" / "SST-2"
    data.mkdir(parents=True)
    rows = lambda n: "".join(f"the film was {w}\t{int(w in POS)}\n" for w in ((POS + NEG) * n))
    (data / "train.tsv").write_text("sentence\tlabel\n" + rows(4))
    (data / "dev.tsv").write_text("sentence\tlabel\n" + rows(1))
    tiny = [f"data.root={tmp_path / 'data'}", "data.max_seq_length=16", "train.max_steps=2", "train.batch_size=8",
            "train.eval_steps=0", "eval.batch_size=16", f"distill.cache_dir={tmp_path / 'cache'}"]
    root = tmp_path / "root"
    jobs = {j.name: j for j in retention_runs.task_jobs(root, "SST-2", [1], 1, 32, {"teacher": tiny, "cut4_kd": tiny})}
    monkeypatch.chdir(REPO)
    failed = compare_full.run_graph([jobs["SST-2_teacher"], jobs["s1_SST-2_cut4_kd"]], root, 1, None)
    assert failed == set(), [(p.name, p.read_text()[-2000:]) for p in (root / "logs").iterdir()]
    teacher = json.loads((root / "teachers" / "SST-2" / "results.json").read_text())
    student = json.loads((root / "s1" / "SST-2" / "cut4_kd" / "results.json").read_text())
    assert teacher["params"] == mpnet_params(12) == 109_488_002 and student["params"] == mpnet_params(4)
    assert student["metrics"]["examples"] == 12 and 0 <= student["metrics"]["accuracy"] <= 1


def test_a_run_made_outside_the_graph_joins_the_table_beside_its_twin(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path / f"s{seed}" / "SST-2" / "cut6_twin", 0.80, 500)
        write_run(tmp_path / f"s{seed}" / "SST-2" / "cut6_kd_transfer", 0.82, 500)
    argv = retention_runs.table_argv(tmp_path, "SST-2", [1, 2], [("cut6_kd_transfer", "cut6_twin")])
    runs = ",".join(str(tmp_path / f"s{seed}" / "SST-2" / "cut6_kd_transfer") for seed in (1, 2))
    assert argv[argv.index(f"cut6_kd_transfer={runs}") - 1] == "--row"
    assert "--twin=cut6_kd_transfer=cut6_twin" in argv
    assert "--twin=cut6_kd=cut6_twin" not in argv  # cut6_kd itself never ran here
    assert retention_runs.table_argv(tmp_path, "CoLA", [1], [("cut6_kd_transfer", "cut6_twin")])[2:] == [
        "--plot", str(tmp_path / "retention_CoLA.png")]  # a task without it: left out, as an unfinished run


def test_a_bad_extra_run_is_one_line_exit_2(tmp_path):
    done = subprocess.run(SCRIPT + ["--table", "--tasks", "SST-2", "--root", str(tmp_path), "--extra", "cut6_kd_transfer=twin"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().endswith("--extra cut6_kd_transfer=twin: expected RUN=TWIN, TWIN one of cut4_twin, "
                                        "cut6_twin, minilm_twin, tiny4_twin"), done.stderr
