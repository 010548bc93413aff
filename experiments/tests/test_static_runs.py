"""experiments/static_runs.py: the job graph (order, dependencies, what each command trains), the table's arguments
and its one-line error when a run is missing."""
import subprocess
import sys

from experiments import static_runs, static_table
from tests.helpers import REPO, job_config

SCRIPT = [sys.executable, str(REPO / "experiments" / "static_runs.py")]


def test_the_bilm_starts_first_and_every_student_waits_for_what_it_reads(tmp_path):
    jobs = static_runs.jobs_for(tmp_path, [4, 5], m2v_python="/x/python")
    names = [j.name for j in jobs]
    students = ["SST-2_distilled_bilstm", "SST-2_elmo_bilstm", "STS-B_elmo_bilstm", "SST-2_ltd", "STS-B_ltd_embedding"]
    assert names == ["elmo_lm", "SST-2_teacher", "STS-B_teacher"] + [f"s{s}_{r}" for s in (4, 5) for r in students] \
        + ["m2v_pca256", "m2v_full"]
    deps = {j.name: j.deps for j in jobs}
    assert deps["s4_SST-2_elmo_bilstm"] == ["SST-2_teacher", "elmo_lm"]
    assert deps["s5_STS-B_elmo_bilstm"] == ["STS-B_teacher", "elmo_lm"]
    assert deps["s4_SST-2_distilled_bilstm"] == deps["s4_SST-2_ltd"] == ["SST-2_teacher"]
    assert deps["s4_STS-B_ltd_embedding"] == deps["elmo_lm"] == deps["m2v_full"] == []  # the packaged encoder teaches
    m2v = {j.name: j for j in jobs}["m2v_pca256"]
    assert m2v.cmd[:2] == ["/x/python", "experiments/model2vec_distill.py"] and not m2v.resumable
    assert m2v.cmd[m2v.cmd.index("--pca_dims") + 1] == "256" and m2v.cmd[-1] == str(tmp_path / "m2v" / "pca256")
    assert "--do_test" not in {j.name: j for j in jobs}["elmo_lm"].cmd  # the biLM has no test split


def test_each_run_reads_the_teacher_and_bilm_of_this_root_at_the_stated_budget(tmp_path):
    jobs = {j.name: j for j in static_runs.jobs_for(tmp_path, [2])}
    bilm, sst2, stsb = str(tmp_path / "general" / "elmo_lm"), str(tmp_path / "teachers" / "SST-2"), \
        str(tmp_path / "teachers" / "STS-B")
    expected = {  # model_name, distill.teacher, model.pretrained (the ELMo students), epochs
        "s2_SST-2_distilled_bilstm": ("distilled_bilstm", sst2, None, 1),
        "s2_SST-2_elmo_bilstm": ("elmo_bilstm", sst2, bilm, 1),
        "s2_STS-B_elmo_bilstm": ("elmo_bilstm", stsb, bilm, 5),
        "s2_SST-2_ltd": ("ltd", sst2, None, 3),
    }
    for name, (model, teacher, pretrained, epochs) in expected.items():
        config = job_config(jobs[name])
        assert config.get("model", "model_name") == model, name
        assert config.get("distill", "teacher") == teacher, name
        if pretrained:
            assert config.get("model", "pretrained") == pretrained, name
        assert config.get("train", "epoch") == epochs, name
        assert jobs[name].cmd[jobs[name].cmd.index("--seed") + 1] == "2"
    embedding = job_config(jobs["s2_STS-B_ltd_embedding"])
    assert (embedding.get("model", "model_name"), embedding.get("train", "epoch")) == ("ltd_embedding", 10)
    assert job_config(jobs["elmo_lm"]).get("train", "max_steps") == 3000
    assert "m2v_pca256" not in jobs  # no Model2Vec venv named, no peer jobs


def test_table_arguments_parse_and_time_only_the_first_seed(tmp_path):
    quality, speed = static_runs.table_argvs(tmp_path, [1, 2, 3])
    q, s = static_table.parse_args(quality), static_table.parse_args(speed)
    assert q.skip_speed and q.sst2_max_train == 20000 and s.skip_sst2 and s.threads == 2 and s.rounds == 10
    assert [kind for kind, _ in q.models].count("classifier") == 6 and len(q.clf_stsb) == 3 and len(q.sst2_run) == 3
    timed = [spec for _, spec in s.models]
    assert all(f"{tmp_path}/s1/" in spec or "/m2v/" in spec for spec in timed) and len(timed) == 8
    assert "ltd_embedding s1, our encoder=" + str(tmp_path / "s1" / "STS-B" / "ltd_embedding") in timed


def test_table_over_a_root_without_runs_is_one_line_exit_2(tmp_path):
    done = subprocess.run(SCRIPT + ["--table", "--root", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(tmp_path / "m2v" / "pca256") in done.stderr
