"""Dataset readers: every GLUE layout, JSONL and plain text, and every malformed-input path.

Bad data must always surface as DataError("file:line: ...") so a run fails with one clear line.
"""

import os
from collections import Counter
from pathlib import Path

import pytest

import dataset.glue_tsv as glue_tsv
import dataset.jsonl as jsonl
import dataset.text_lines as text_lines
from dataset.glue_tsv import GLUE_TASKS, GlueTSVDataset, read_glue_tsv
from dataset.jsonl import JsonlDataset, read_jsonl
from dataset.text_lines import TextLinesDataset, read_text_lines
from utils.errors import ConfigError, DataError


def write(tmp_path, name, content):
    """Write str (as UTF-8) or bytes to tmp_path/name, return the path."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def error_of(fn, *args, **kwargs):
    """The DataError message of a call that must fail."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- GLUE layouts

def test_cola_without_header_uses_fixed_positions(tmp_path):
    p = write(tmp_path, "train.tsv", "gj04\t1\t\tOur friends won't buy this.\ngj04\t0\t*\tBad \"quote here.\n")
    ex = read_glue_tsv(p, "CoLA")
    assert ex == [
        {"guid": "train-1", "text_a": "Our friends won't buy this.", "text_b": None, "label": 1},
        {"guid": "train-2", "text_a": 'Bad "quote here.', "text_b": None, "label": 0},
    ]


def test_cola_test_file_has_header_and_no_label(tmp_path):
    p = write(tmp_path, "test.tsv", "index\tsentence\n0\tBill whistled.\n1\tThe book was read.\n")
    ex = read_glue_tsv(p, "CoLA")
    assert [(e["text_a"], e["label"]) for e in ex] == [("Bill whistled.", None), ("The book was read.", None)]


def test_sst2_train_and_test(tmp_path):
    train = write(tmp_path, "train.tsv", "sentence\tlabel\nhide new secretions \t0\ngood fun \t1\n")
    assert [(e["text_a"], e["label"]) for e in read_glue_tsv(train, "SST-2")] == [
        ("hide new secretions ", 0), ("good fun ", 1)]
    test = write(tmp_path, "test.tsv", "index\tsentence\n0\tuneasy mishmash\n")
    assert read_glue_tsv(test, "sst2")[0] == {"guid": "test-2", "text_a": "uneasy mishmash",
                                              "text_b": None, "label": None}


def test_mrpc_bom_header(tmp_path):
    content = ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
               "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi accused .\r\n"
               "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's .\r\n")
    ex = read_glue_tsv(write(tmp_path, "train.tsv", content), "MRPC")
    assert ex[0]["text_a"] == "Amrozi accused his brother ."
    assert ex[0]["text_b"] == "Referring to him , Amrozi accused ."  # no trailing "\r"
    assert [e["label"] for e in ex] == [1, 0]


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


def test_stsb_float_score(tmp_path):
    p = write(tmp_path, "dev.tsv", STSB_HEADER
              + "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane.\t3.800\n")
    ex = read_glue_tsv(p, "STS-B")
    assert ex[0]["label"] == pytest.approx(3.8) and isinstance(ex[0]["label"], float)
    assert (ex[0]["text_a"], ex[0]["text_b"]) == ("A plane is taking off.", "An air plane.")


@pytest.mark.parametrize("score", ["abc", "", "nan", "inf"])
def test_stsb_bad_score(tmp_path, score):
    p = write(tmp_path, "dev.tsv", STSB_HEADER + f"0\tg\tf\ty\t1\tn\tn\tA.\tB.\t{score}\n")
    assert error_of(read_glue_tsv, p, "STS-B") == f"{p}:2: score '{score}' is not a finite number"


@pytest.mark.parametrize("task,content,expected", [
    ("QQP", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tHow?\tWhy?\t1\n", ("How?", "Why?", 1)),
    ("QNLI", "index\tquestion\tsentence\tlabel\n0\tWhat?\tThis.\tnot_entailment\n", ("What?", "This.", 1)),
    ("RTE", "index\tsentence1\tsentence2\tlabel\n0\tA b.\tA.\tentailment\n", ("A b.", "A.", 0)),
    ("WNLI", "index\tsentence1\tsentence2\tlabel\n0\tJane knocked.\tSusan.\t1\n", ("Jane knocked.", "Susan.", 1)),
    # MNLI official layout (12 columns, gold_label last) and the shared 4-column subset layout
    ("MNLI", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
             "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
             "0\t1\t1e\tgov\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tPremise.\tHypothesis.\tneutral\tneutral\n",
     ("Premise.", "Hypothesis.", 2)),
    ("MNLI", "index\tsentence1\tsentence2\tgold_label\n0\tSalt kept the town fed.\tSalt.\tcontradiction\n",
     ("Salt kept the town fed.", "Salt.", 0)),
])
def test_pair_tasks_by_header_name(tmp_path, task, content, expected):
    ex = read_glue_tsv(write(tmp_path, "train.tsv", content), task)
    assert [(e["text_a"], e["text_b"], e["label"]) for e in ex] == [expected]


def test_test_file_without_label_column(tmp_path):
    p = write(tmp_path, "test.tsv", "index\tsentence1\tsentence2\n0\tA.\tB.\n")
    assert read_glue_tsv(p, "RTE")[0]["label"] is None


def test_task_names_are_normalised_and_label_list_overrides(tmp_path):
    p = write(tmp_path, "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tnot_entailment\n")
    assert read_glue_tsv(p, "rte")[0]["label"] == 1
    assert read_glue_tsv(p, "RTE", label_list=["not_entailment", "entailment"])[0]["label"] == 0


def test_blank_lines_skipped_and_max_examples(tmp_path):
    rows = "".join(f"{i}\ts{i}.\tt{i}.\tentailment\n\n" for i in range(5))
    p = write(tmp_path, "train.tsv", "index\tsentence1\tsentence2\tlabel\n" + rows)
    assert len(read_glue_tsv(p, "RTE")) == 5
    assert [e["text_a"] for e in read_glue_tsv(p, "RTE", max_examples=2)] == ["s0.", "s1."]


# ---------------------------------------------------------------- GLUE errors

def test_wrong_column_count_names_file_and_line(tmp_path):
    p = write(tmp_path, "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tA. B.\tentailment\n")
    assert error_of(read_glue_tsv, p, "RTE") == f"{p}:3: expected 4 columns, got 3"


def test_wrong_column_count_without_header(tmp_path):
    p = write(tmp_path, "train.tsv", "gj04\t1\t\tFine.\ngj04\t1\tToo few.\n")
    assert error_of(read_glue_tsv, p, "CoLA") == f"{p}:2: expected 4 columns, got 3"


def test_label_outside_label_set(tmp_path):
    p = write(tmp_path, "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tmaybe\n")
    assert error_of(read_glue_tsv, p, "RTE") == (
        f"{p}:2: label 'maybe' not in label set ['entailment', 'not_entailment']")


def test_header_missing_text_column(tmp_path):
    p = write(tmp_path, "train.tsv", "a\tb\tc\n1\t2\t3\n")
    assert error_of(read_glue_tsv, p, "QNLI").startswith(f"{p}:1: header has no 'question' column")


def test_unknown_task_lists_known_tasks(tmp_path):
    p = write(tmp_path, "train.tsv", "sentence\tlabel\nx\t1\n")
    msg = error_of(read_glue_tsv, p, "SQuAD")
    assert "unknown GLUE task 'SQuAD'" in msg and all(name in msg for name in GLUE_TASKS)


# ---------------------------------------------------------------- shared file errors (all readers)

READERS = [
    ("glue", lambda p, **kw: read_glue_tsv(p, "SST-2", **kw), "sentence\tlabel\n", "ok\t1\n"),
    ("jsonl", lambda p, **kw: read_jsonl(p, "t", **kw), "", '{"t": "ok"}\n'),
    ("text", lambda p, **kw: read_text_lines(p, **kw), "", "ok\n"),
]


@pytest.mark.parametrize("name,read,header,row", READERS)
def test_missing_file(tmp_path, name, read, header, row):
    p = tmp_path / "nope.txt"
    assert error_of(read, p) == f"{p}: file not found"


@pytest.mark.parametrize("name,read,header,row", READERS)
@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_or_header_only(tmp_path, name, read, header, row, content):
    p = write(tmp_path, "data.txt", header + content)
    assert error_of(read, p) == f"{p}: no examples"


@pytest.mark.parametrize("name,read,header,row", READERS)
def test_non_utf8_names_line(tmp_path, name, read, header, row):
    p = write(tmp_path, "data.txt", header.encode() + row.encode() + b"caf\xe9 \xff\n")
    line = 3 if header else 2
    assert error_of(read, p).startswith(f"{p}:{line}: not valid UTF-8")


@pytest.mark.parametrize("name,read,header,row", READERS)
def test_line_too_long(tmp_path, name, read, header, row):
    p = write(tmp_path, "data.txt", header + row + "x" * 1_000_001 + "\n")
    assert error_of(read, p).startswith(f"{p}:{3 if header else 2}: line too long")


@pytest.mark.parametrize("name,read,header,row", READERS)
def test_max_examples(tmp_path, name, read, header, row):
    p = write(tmp_path, "data.txt", header + row * 4)
    assert len(read(p)) == 4 and len(read(p, max_examples=3)) == 3


@pytest.mark.parametrize("name,read,header,row", READERS)
@pytest.mark.parametrize("garbage", [b"\x00\x01\t\t\t\n", b"\t\n\"\n", b"{[\n", b"\xef\xbb\xbf\r\n\x0b\n",
                                     b"\"unbalanced\t1\n}}\n"])
def test_garbage_only_raises_data_error(tmp_path, name, read, header, row, garbage):
    """Whatever the bytes, the outcome is examples or DataError, never another exception."""
    p = write(tmp_path, "data.txt", header.encode() + garbage)
    try:
        out = read(p)
    except DataError as err:
        assert str(err).startswith(str(p))
    else:
        assert out and all(isinstance(e["text_a"], str) for e in out)


# ---------------------------------------------------------------- JSONL

def test_jsonl_boolq_boolean_labels(tmp_path):
    p = write(tmp_path, "val.jsonl", '{"question": "is it?", "passage": "Yes.", "idx": 0, "label": true}\n\n'
                                    '{"question": "no?", "passage": "No.", "idx": 1, "label": false}\n')
    ex = read_jsonl(p, "question", "passage", "label", ["false", "true"])
    assert ex == [{"guid": "val-1", "text_a": "is it?", "text_b": "Yes.", "label": 1},
                  {"guid": "val-3", "text_a": "no?", "text_b": "No.", "label": 0}]


def test_jsonl_regression_and_unlabeled(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"a": "x", "s": 2.5}\n{"a": "y", "s": 3}\n')
    assert [e["label"] for e in read_jsonl(p, "a", label_field="s")] == [2.5, 3.0]
    assert [e["label"] for e in read_jsonl(p, "a")] == [None, None]
    bad = write(tmp_path, "b.jsonl", '{"a": "x", "s": true}\n')
    assert error_of(read_jsonl, bad, "a", label_field="s") == f"{bad}:1: label True is not a finite number"


def test_jsonl_int_labels_via_str(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"a": "x", "l": 1}\n{"a": "y", "l": "0"}\n')
    assert [e["label"] for e in read_jsonl(p, "a", label_field="l", label_list=["0", "1"])] == [1, 0]


@pytest.mark.parametrize("line,problem", [
    ('{"q": "x", "p": "y", "label": tru}', "invalid JSON"),
    ('[1, 2]', "expected a JSON object, got list"),
    ('{"q": "x", "label": true}', "missing field 'p'"),
    ('{"p": "y", "label": true}', "missing field 'q'"),
    ('{"q": "x", "p": "y"}', "missing field 'label'"),
    ('{"q": 5, "p": "y", "label": true}', "field 'q' must be a string, got int"),
    ('{"q": "x", "p": null, "label": true}', "field 'p' must be a string, got NoneType"),
    ('{"q": "x", "p": "y", "label": "maybe"}', "label 'maybe' not in label set ['false', 'true']"),
    ('[' * 100000, "invalid JSON"),
])
def test_jsonl_malformed_line(tmp_path, line, problem):
    p = write(tmp_path, "d.jsonl", '{"q": "ok", "p": "ok", "label": false}\n' + line + "\n")
    msg = error_of(read_jsonl, p, "q", "p", "label", ["false", "true"])
    assert msg.startswith(f"{p}:2: {problem}")


# ---------------------------------------------------------------- text lines

def test_text_lines(tmp_path):
    p = write(tmp_path, "wiki.txt", b"First sentence.\r\n\n  \nA\x0bvertical tab stays inside.\n")
    ex = read_text_lines(p)
    assert [e["text_a"] for e in ex] == ["First sentence.", "A\x0bvertical tab stays inside."]
    assert ex[0] == {"guid": "wiki-1", "text_a": "First sentence.", "text_b": None, "label": None}


# ---------------------------------------------------------------- Dataset classes

class FakeConfig:
    """config.get(section, key) backed by a dict; unknown keys fail, so tests show which keys are read."""

    def __init__(self, **data):
        self.data = {"use_aug": False, "transfer_file": "", "heldout_every": 0, **data}

    def get(self, section, key):
        assert section == "data"
        return self.data[key]


def test_glue_dataset(tmp_path, monkeypatch):
    p = write(tmp_path, "train.tsv", "index\tsentence1\tsentence2\tlabel\n"
              + "".join(f"{i}\ta{i}.\tb{i}.\tnot_entailment\n" for i in range(4)))
    monkeypatch.setattr(glue_tsv, "data_file", lambda config, mode: p)
    cfg = FakeConfig(task="RTE", label_list=[], max_examples=2)
    ds = GlueTSVDataset(cfg, "train")
    assert len(ds) == 2 and ds[1]["text_a"] == "a1." and ds[1]["label"] == 1
    assert ds.label_list == ["entailment", "not_entailment"] and ds.is_regression is False
    assert len(GlueTSVDataset(cfg, "valid")) == 4  # max_examples applies to train only
    custom = GlueTSVDataset(FakeConfig(task="RTE", label_list=["not_entailment", "entailment"], max_examples=0), "test")
    assert custom.label_list == ["not_entailment", "entailment"] and custom[0]["label"] == 0


def test_augmented_rows_follow_the_capped_originals(tmp_path):
    from init.config import load_config_text
    write(tmp_path, "train.tsv", "sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(5)))
    aug = write(tmp_path, "train_aug.tsv", "sentence\tlabel\nx0\t0\nx1\t1\nx2\t1\n")
    text = f"[model]\nmodel_name = bert_cls\n[data]\nroot = {tmp_path}\ntrain_file = train.tsv\nmax_examples = 2\nuse_aug = true\naug_file = {aug}\n"
    ds = GlueTSVDataset(load_config_text(text), "train")
    assert [e["text_a"] for e in ds.examples] == ["s0", "s1", "x0", "x1", "x2"]
    assert [e["label"] for e in ds.examples] == [0, 1, 0, 1, 1]
    assert len(GlueTSVDataset(load_config_text(text.replace("use_aug = true", "use_aug = false")), "train")) == 2
    with pytest.raises(ConfigError, match=r"<text>:\d+: \[data\] use_aug = true needs \[data\] aug_file"):
        GlueTSVDataset(load_config_text(text.replace(f"aug_file = {aug}", "")), "train")
    with pytest.raises(DataError, match=r"\[data\] aug_file = .*missing.tsv does not exist \(make it with tools/augment.py\)"):
        GlueTSVDataset(load_config_text(text.replace(str(aug), str(tmp_path / "missing.tsv"))), "train")


def test_glue_dataset_regression(tmp_path, monkeypatch):
    p = write(tmp_path, "dev.tsv", STSB_HEADER + "0\tg\tf\ty\t1\tn\tn\tA.\tB.\t4.750\n")
    monkeypatch.setattr(glue_tsv, "data_file", lambda config, mode: p)
    ds = GlueTSVDataset(FakeConfig(task="STS-B", label_list=[], max_examples=0), "valid")
    assert ds.is_regression is True and ds.label_list is None and ds[0]["label"] == 4.75


def test_jsonl_dataset(tmp_path, monkeypatch):
    p = write(tmp_path, "val.jsonl", "".join(f'{{"question": "q{i}", "passage": "p", "label": {str(i % 2 == 0).lower()}}}\n'
                                             for i in range(3)))
    monkeypatch.setattr(jsonl, "data_file", lambda config, mode: p)
    cfg = dict(text_a_field="question", text_b_field="passage", label_field="label",
               label_list=["false", "true"], max_examples=1)
    ds = JsonlDataset(FakeConfig(**cfg), "train")
    assert len(ds) == 1 and ds[0]["label"] == 1 and ds.label_list == ["false", "true"] and not ds.is_regression
    assert [e["label"] for e in JsonlDataset(FakeConfig(**cfg), "test")] == [1, 0, 1]
    unlabeled = JsonlDataset(FakeConfig(**{**cfg, "label_field": "", "label_list": []}), "test")
    assert unlabeled.label_list is None and not unlabeled.is_regression and unlabeled[0]["label"] is None
    with pytest.raises(ConfigError):
        JsonlDataset(FakeConfig(**{**cfg, "text_a_field": ""}), "train")


def test_text_lines_dataset(tmp_path, monkeypatch):
    p = write(tmp_path, "wiki.txt", "One.\nTwo.\nThree.\n")
    monkeypatch.setattr(text_lines, "data_file", lambda config, mode: p)
    ds = TextLinesDataset(FakeConfig(max_examples=2), "train")
    assert [e["text_a"] for e in ds] == ["One.", "Two."] and ds.label_list is None and not ds.is_regression


# ---------------------------------------------------------------- real shared data

def shared_data():
    """The read-only shared data dir (KDW_SHARED_DATA overrides), or None when absent."""
    path = Path(os.environ.get("KDW_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
    return path if path.is_dir() else None


# rows and label counts as stated in shared/data/README.md
REAL_GLUE = [
    ("SST-2", "train.tsv", 67349, {"0": 29780, "1": 37569}),
    ("SST-2", "dev.tsv", 872, {"0": 428, "1": 444}),
    ("MRPC", "train.tsv", 3668, {"1": 2474, "0": 1194}),
    ("MRPC", "dev.tsv", 408, {"1": 279, "0": 129}),
    ("RTE", "train.tsv", 2490, {"entailment": 1249, "not_entailment": 1241}),
    ("RTE", "dev.tsv", 277, {"entailment": 146, "not_entailment": 131}),
    ("CoLA", "train.tsv", 8551, {"1": 6023, "0": 2528}),
    ("STS-B", "train.tsv", 5749, None),
    ("STS-B", "dev.tsv", 1500, None),
    ("WNLI", "train.tsv", 635, {"0": 323, "1": 312}),
    ("WNLI", "dev.tsv", 71, {"0": 40, "1": 31}),
    ("QNLI", "dev.tsv", 5463, {"entailment": 2702, "not_entailment": 2761}),
    ("QNLI", "train_subset.tsv", 9999, {"entailment": 5027, "not_entailment": 4972}),
    ("QQP", "train_subset.tsv", 20000, {"0": 12577, "1": 7423}),
    ("QQP", "dev_subset.tsv", 3497, {"0": 2173, "1": 1324}),
    ("MNLI", "train_subset.tsv", 8999, {"entailment": 3061, "neutral": 2980, "contradiction": 2958}),
    ("MNLI", "dev_subset.tsv", 1000, {"entailment": 347, "neutral": 333, "contradiction": 320}),
]


@pytest.mark.parametrize("task,name,rows,counts", REAL_GLUE)
def test_real_glue_files_load(task, name, rows, counts):
    root = shared_data()
    if root is None:
        pytest.skip("shared data dir (../shared/data or $KDW_SHARED_DATA) not present on this machine")
    ex = read_glue_tsv(root / "glue" / task / name, task)
    assert len(ex) == rows
    assert all(e["text_a"] for e in ex)
    labels = GLUE_TASKS[task].labels
    if counts is None:
        assert all(0.0 <= e["label"] <= 5.0 for e in ex)
    else:
        assert Counter(labels[e["label"]] for e in ex) == counts


def test_real_boolq_and_wiki_load():
    root = shared_data()
    if root is None:
        pytest.skip("shared data dir (../shared/data or $KDW_SHARED_DATA) not present on this machine")
    boolq = read_jsonl(root / "boolq" / "val_superglue_format.jsonl", "question", "passage", "label", ["false", "true"])
    assert len(boolq) == 3270 and sum(e["label"] for e in boolq) == 2033
    assert len(read_text_lines(root / "wiki_sentences" / "wiki_en_100k.txt")) == 100000
