"""experiments/static_table.py on tiny static models built here (a Model2Vec StaticModel and sentence-transformers
StaticEmbedding models over five words with vectors chosen by hand) and tiny STS-B / SST-2 files: Spearman against
ranks worked out by hand, parameters = rows x width, LR accuracy on a separable toy set, the own-head accuracy read
from results.json, rows in command-line order, speed figures per interleaved round, and one-line path errors; and a
word-level classifier row (--clf) on a tiny Distilled-BiLSTM run trained here."""
import importlib.util
import json

import numpy as np
import pytest

from experiments import static_table

# model2vec is not in requirements*.txt: without it the Model2Vec row is left out and the rest still runs
HAVE_M2V = importlib.util.find_spec("model2vec") is not None
WORDS = ["[UNK]", "cat", "dog", "fish", "bird", "tree"]
VECTORS = {"cat": (1, 0), "dog": (1, 1), "fish": (0, 1), "bird": (1, 2), "tree": (2, 1)}
SWAPPED = {**VECTORS, "bird": (2, 1), "tree": (1, 2)}  # the run's student: bird and tree trade vectors

# STS-B rows: sentence1, sentence2, gold score; the cosines of the mean word vectors, VECTORS | SWAPPED:
STSB = [("cat fish", "dog", 4.0),  # (.5, .5) vs (1, 1): 1 | 1
        ("cat", "dog", 5.0),  # 1 / sqrt(2) = .707 | .707
        ("cat", "bird", 2.0),  # (1, 0).(1, 2) / sqrt(5) = .447 | (1, 0).(2, 1) / sqrt(5) = .894
        ("cat", "fish", 1.0),  # 0 | 0
        ("tree", "bird", 3.0)]  # (2, 1).(1, 2) / 5 = .8 | .8
GOLD_RANKS = [4, 5, 2, 1, 3]
COS_RANKS = [5, 3, 2, 1, 4]  # 1 > .8 > .707 > .447 > 0
SWAPPED_COS_RANKS = [5, 2, 4, 1, 3]  # 1 > .894 > .8 > .707 > 0

# SST-2: label 1 where x > y (cat, tree), 0 where y > x (fish, bird): separable by the line x = y
SST2_TRAIN = [("cat", 1), ("tree", 1), ("cat tree", 1), ("fish", 0), ("bird", 0), ("fish bird", 0),
              ("cat", 0)]  # a 7th, contradicting row: left out by --sst2_max_train 6
SST2_DEV = [("tree cat", 1), ("cat cat tree", 1), ("bird fish", 0), ("fish fish", 0)]


def by_hand_spearman(cos_ranks, gold_ranks):
    """x 100 of 1 - 6 sum(d^2) / (n (n^2 - 1)), the formula for ranks without ties."""
    n = len(cos_ranks)
    d2 = sum((a - b) ** 2 for a, b in zip(cos_ranks, gold_ranks))
    return 100 * (1 - 6 * d2 / (n * (n * n - 1)))


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0] * len(values)
    for rank, i in enumerate(order, 1):
        out[i] = rank
    return out


def mean_vector(text, vectors):
    return np.mean([vectors[w] for w in text.split()], axis=0)


def table_of(vectors, width):
    """(len(WORDS), width) rows: [UNK] zero, the 2-d vectors padded with zeros (cosines unchanged)."""
    rows = np.zeros((len(WORDS), width), dtype=np.float32)
    for i, word in enumerate(WORDS[1:], 1):
        rows[i, :2] = vectors[word]
    return rows


def tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return tok


def write_sentence_transformer(path, vectors, width):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    module = StaticEmbedding(tokenizer(), embedding_weights=torch.tensor(table_of(vectors, width)))
    SentenceTransformer(modules=[module], device="cpu").save(str(path))


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


@pytest.fixture
def setup(tmp_path):
    """Files and the base command line: teacher (width 5), run 'ltd' (width 4, SWAPPED), Model2Vec 'm2v' (width 3)."""
    write_sentence_transformer(tmp_path / "teacher", VECTORS, 5)
    if HAVE_M2V:
        from model2vec import StaticModel
        StaticModel(vectors=table_of(VECTORS, 3), tokenizer=tokenizer()).save_pretrained(str(tmp_path / "m2v"))
    else:
        (tmp_path / "m2v").mkdir()  # the path checks below still find a folder
    run = tmp_path / "run_ltd"
    write_sentence_transformer(run / "student", SWAPPED, 4)
    (run / "results.json").write_text(json.dumps({"metrics": {"accuracy": 0.8125, "loss": 0.4}}))
    # GLUE's STS-B layout: the columns are found by header name, not position
    write_tsv(tmp_path / "STS-B" / "dev.tsv", ["index", "genre", "sentence1", "sentence2", "score"],
              [(i, "main", a, b, f"{s:.3f}") for i, (a, b, s) in enumerate(STSB)])
    write_tsv(tmp_path / "SST-2" / "train.tsv", ["sentence", "label"], SST2_TRAIN)
    write_tsv(tmp_path / "SST-2" / "dev.tsv", ["sentence", "label"], SST2_DEV)
    m2v = ["--m2v", f"m2v={tmp_path / 'm2v'}"] if HAVE_M2V else []
    argv = ["--teacher", str(tmp_path / "teacher"), "--run", f"ltd={run}", *m2v, "--sst2_run", f"ltd={run}",
            "--stsb", str(tmp_path / "STS-B" / "dev.tsv"), "--sst2_train", str(tmp_path / "SST-2" / "train.tsv"),
            "--sst2_dev", str(tmp_path / "SST-2" / "dev.tsv"), "--threads", "1"]
    return tmp_path, argv


def test_hand_worked_ranks_follow_from_the_chosen_vectors():
    """The ranks written out above are those of the cosines of the chosen vectors (a check on the test itself)."""
    for vectors, expected in ((VECTORS, COS_RANKS), (SWAPPED, SWAPPED_COS_RANKS)):
        cos = [float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
               for u, v in ((mean_vector(a, vectors), mean_vector(b, vectors)) for a, b, _ in STSB)]
        assert ranks(cos) == expected
    assert ranks([s for _, _, s in STSB]) == GOLD_RANKS
    assert by_hand_spearman(COS_RANKS, GOLD_RANKS) == pytest.approx(70.0)  # sum d^2 = 1 + 4 + 0 + 0 + 1 = 6
    assert by_hand_spearman(SWAPPED_COS_RANKS, GOLD_RANKS) == pytest.approx(30.0)  # 1 + 9 + 4 + 0 + 0 = 14


def test_quality_columns_parameters_and_row_order(setup, capsys):
    tmp_path, argv = setup
    out = tmp_path / "out" / "static.json"
    static_table.main(argv + ["--skip_speed", "--sst2_max_train", "6", "--json", str(out)])
    record = json.loads(out.read_text())
    models = {m["label"]: m for m in record["models"]}
    assert [m["label"] for m in record["models"]] == ["teacher", "ltd", "m2v"][:3 if HAVE_M2V else 2]  # as given
    # STS-B: Spearman of the cosines against the gold scores, as worked out by hand
    assert models["teacher"]["stsb_spearman"] == pytest.approx(by_hand_spearman(COS_RANKS, GOLD_RANKS))
    assert models["ltd"]["stsb_spearman"] == pytest.approx(by_hand_spearman(SWAPPED_COS_RANKS, GOLD_RANKS))
    # parameters: a StaticEmbedding's numel is rows x width (Model2Vec's: test_model2vec_row)
    assert models["teacher"]["params"] == 6 * 5 and models["ltd"]["params"] == 6 * 4
    # SST-2: LR on the separable toy set is exact; the run with --sst2_run reads its results.json
    assert record["settings"]["sst2_train_rows"] == 6
    assert (models["teacher"]["sst2_accuracy"], models["teacher"]["sst2_how"]) == (100.0, "LR")
    assert (models["ltd"]["sst2_accuracy"], models["ltd"]["sst2_how"]) == (81.25, "own head")
    assert models["ltd"]["run_results_metrics"] == {"accuracy": 0.8125, "loss": 0.4}
    assert "sentences_per_s" not in models["teacher"]
    lines = capsys.readouterr().out.splitlines()
    rows = ["| teacher | teacher | 30 | - | - | 70.00 | 100.00 (LR) |",
            "| ltd | run | 24 | - | - | 30.00 | 81.25 (own head) |",
            "| m2v | Model2Vec | 18 | - | - | 70.00 | 100.00 (LR) |"]
    assert lines[2:2 + len(models)] == rows[:len(models)] and lines[2 + len(models)] == ""
    assert record["table"] == "\n".join(lines)
    assert not list(out.parent.glob(".*"))  # the temp file was renamed over OUT


def test_a_fast_row_is_the_same_student_through_our_encoder(setup):
    """--fast: the run's folder encoded by deploy/static_encoder.py: the same parameters and scores as its --run row."""
    tmp_path, argv = setup
    out = tmp_path / "fast.json"
    static_table.main(argv + ["--fast", f"ltd_fast={tmp_path / 'run_ltd'}", "--sst2_run", f"ltd_fast={tmp_path / 'run_ltd'}",
                              "--skip_speed", "--sst2_max_train", "6", "--json", str(out)])
    models = {m["label"]: m for m in json.loads(out.read_text())["models"]}
    fast, run = models["ltd_fast"], models["ltd"]
    assert (fast["kind"], fast["params"], fast["width"]) == ("fast", 6 * 4, 4)
    assert fast["stsb_spearman"] == pytest.approx(by_hand_spearman(SWAPPED_COS_RANKS, GOLD_RANKS)) == run["stsb_spearman"]
    assert fast["sst2_accuracy"] == run["sst2_accuracy"] == 81.25
    with pytest.raises(SystemExit, match=r"^--fast t=.*teacher: no such file .*student/modules.json"):
        static_table.main(argv + ["--fast", f"t={tmp_path / 'teacher'}", "--skip_speed", "--skip_sst2"])


@pytest.mark.skipif(not HAVE_M2V, reason="model2vec is not installed (pip install model2vec==0.10.0)")
def test_model2vec_row(setup):
    """Model2Vec: parameters = embedding rows x width; Spearman and LR accuracy as for the other models."""
    tmp_path, argv = setup
    out = tmp_path / "m2v.json"
    static_table.main(argv + ["--skip_speed", "--sst2_max_train", "6", "--json", str(out)])
    m2v = json.loads(out.read_text())["models"][2]
    assert (m2v["label"], m2v["kind"], m2v["rows"], m2v["width"], m2v["params"]) == ("m2v", "model2vec", 6, 3, 6 * 3)
    assert m2v["stsb_spearman"] == pytest.approx(by_hand_spearman(COS_RANKS, GOLD_RANKS))
    assert (m2v["sst2_accuracy"], m2v["sst2_how"]) == (100.0, "LR")


def test_speed_is_measured_per_round_and_read_against_the_teacher(setup, capsys):
    tmp_path, argv = setup
    out = tmp_path / "speed.json"
    static_table.main(argv + ["--skip_sst2", "--rounds", "3", "--warmup", "1", "--n_sentences", "4",
                              "--json", str(out)])
    record = json.loads(out.read_text())
    assert record["settings"]["n_sentences"] == 4 and record["settings"]["rounds"] == 3
    for model in record["models"]:
        speed = model["sentences_per_s"]
        assert len(speed["rounds"]) == 3 and all(v > 0 for v in speed["rounds"])
        assert speed["median"] == pytest.approx(float(np.median(speed["rounds"])))
        assert model["speedup"] == pytest.approx(speed["median"] / record["models"][0]["sentences_per_s"]["median"])
        assert "sst2_accuracy" not in model
    n = len(record["models"])
    rows = capsys.readouterr().out.splitlines()[2:2 + n]
    assert rows[0].startswith("| teacher | teacher | 30 | ") and "| 1.00x | 70.00 | - |" in rows[0]
    assert [r.split(" | ")[0] for r in rows] == ["| teacher", "| ltd", "| m2v"][:n]


def test_interleaving_rotates_the_first_model():
    calls = []
    rows = [static_table.Row(name, "run", name, name, encode=lambda texts, n=name: calls.append(n)) for name in "abc"]
    speeds = static_table.time_rounds(rows, ["x"], rounds=2, warmup=1)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in speeds.items()} == {"a": 2, "b": 2, "c": 2}


@pytest.mark.parametrize("extra, message", [
    (["--m2v", "m2v2={tmp}/nope"], "--m2v m2v2={tmp}/nope: no such folder"),
    (["--teacher", "{tmp}/nope"], "--teacher {tmp}/nope: no such folder"),
    (["--stsb", "{tmp}/nope.tsv"], "--stsb {tmp}/nope.tsv: no such file"),
    (["--sst2_train", "{tmp}/nope.tsv"], "--sst2_train {tmp}/nope.tsv: no such file"),
    (["--sst2_run", "ltd={tmp}/nope"], "--sst2_run ltd={tmp}/nope: no such folder"),
    (["--sst2_run", "ltd={tmp}/m2v"], "--sst2_run ltd={tmp}/m2v: no such file {tmp}/m2v/results.json"),
    (["--clf", "bilstm={tmp}/nope"], "--clf bilstm={tmp}/nope: no such folder"),
    (["--clf", "bilstm={tmp}/run_ltd"], "--clf bilstm={tmp}/run_ltd: no such file {tmp}/run_ltd/config.ini"),
    (["--clf_stsb", "bilstm={tmp}/run_ltd"], "--clf_stsb bilstm={tmp}/run_ltd: no --clf row labelled bilstm"),
    (["--run", "other={tmp}/m2v"], "--run other={tmp}/m2v: no such file {tmp}/m2v/student/modules.json (a "
                                   "sentence-transformers student: ltd and ltd_embedding runs with segmenter = pieces "
                                   "export one)"),
])
def test_a_missing_path_is_one_line_naming_the_argument(setup, extra, message):
    tmp_path, argv = setup
    with pytest.raises(SystemExit) as err:
        static_table.main(argv + [e.format(tmp=tmp_path) for e in extra] + ["--skip_speed"])
    assert str(err.value) == message.format(tmp=tmp_path)


# --- word-level classifier rows -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bilstm_run(tmp_path_factory):
    """A tiny Distilled-BiLSTM SST-2 run (config.ini, best checkpoint, results.json), as tests/test_bilstm.py trains
    one, and a stand-in STS-B run of it whose results.json holds the regression head's Spearman."""
    from init.config import load_config
    from process.distributed import DistInfo
    from process.train_entry import train_run
    from tests.helpers import tiny_config_text, write_tiny_data, write_tiny_model
    tmp = tmp_path_factory.mktemp("clf")
    teacher, data = write_tiny_model(tmp / "teacher"), write_tiny_data(tmp / "data")
    text = tiny_config_text(teacher, data, "distilled_bilstm", data={"formatter_type": "word_vocab"},
                            bilstm={"hidden_size": 8, "fc_size": 8}, train={"epoch": 1, "learning_rate": 1e-2},
                            distill={"teacher": str(teacher), "kd_loss": "mse", "soft_weight": 1.0, "hard_weight": 0.5})
    (tmp / "bilstm.config").write_text(text)
    train_run(load_config(tmp / "bilstm.config"), DistInfo(), str(tmp / "run"), do_test=True)
    (tmp / "stsb").mkdir()
    (tmp / "stsb" / "results.json").write_text(json.dumps({"metrics": {"pearson": 0.5, "spearman": 0.4321}}))
    return tmp / "run", tmp / "stsb"


def test_classifier_row_counts_times_and_reads_its_own_heads(setup, bilstm_run, capsys):
    import torch

    import predict
    from model.parts.bilstm import BiLSTMClassifier
    tmp_path, argv = setup
    run, stsb = bilstm_run
    out = tmp_path / "clf.json"
    rows = static_table.main(argv + ["--clf", f"bilstm={run}", "--clf_stsb", f"bilstm={stsb}", "--sst2_max_train", "6",
                                     "--rounds", "2", "--warmup", "0", "--n_sentences", "4", "--json", str(out)])
    clf = json.loads(out.read_text())["models"][-1]
    params = sum(p.numel() for p in BiLSTMClassifier.from_pretrained(run / "student").parameters())  # the export
    accuracy = 100 * json.loads((run / "results.json").read_text())["metrics"]["accuracy"]
    assert (clf["label"], clf["kind"], clf["params"], clf["width"]) == ("bilstm", "classifier", params, None)
    assert (clf["sst2_accuracy"], clf["sst2_how"]) == (accuracy, "own head")
    assert clf["stsb_spearman"] == pytest.approx(43.21) and clf["stsb_run"] == str(stsb)
    speed = clf["sentences_per_s"]
    assert len(speed["rounds"]) == 2 and speed["median"] > 0 and all(v > 0 for v in speed["rounds"])
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.startswith("| bilstm |"))
    assert line.startswith(f"| bilstm | word-level classifier | {params:,} | ")
    assert line.endswith(f"| 43.21 (own head) | {accuracy:.2f} (own head) |")
    assert any(note.startswith("STS-B (own head):") and f"bilstm: {stsb}" in note for note in lines)
    # the timed path is the run's classifier: the probabilities predict.py gives for the same texts
    texts = ["good film", "a dull and bad plot"]
    _, probs = predict.predict(str(run), [(t, None) for t in texts])
    assert torch.allclose(torch.from_numpy(rows[-1].encode(texts)).softmax(-1), probs, atol=1e-6)
