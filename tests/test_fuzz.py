"""Property-based fuzzing: any config text or data file either loads or raises the project's one-line
error type (KDWorkerError); never another exception."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataset.glue_tsv import GLUE_TASKS, read_glue_tsv
from dataset.jsonl import read_jsonl
from dataset.text_lines import read_text_lines
from init.config import load_config_text
from utils.errors import KDWorkerError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ini_line = st.one_of(
    st.sampled_from(["[model]", "[train]", "[data]", "[distill]", "[trian]", "[", "[]", "model_name = kd", "epoch = 3",
                     "epoch = x", "shuffle = False", "kd_loss = l2", "= 3", "batch_size =", "#c", "; c", "adam_betas = 0.9,a"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
)
tsv_line = st.one_of(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=12),
             min_size=1, max_size=11).map("\t".join),
    st.sampled_from(["sentence\tlabel", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", "a\t0", "a\t2", "x\ty\tz"]),
)


def _expect_ok_or_ours(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except KDWorkerError as err:
        assert "\n" not in str(err)


@SETTINGS
@given(st.lists(ini_line, max_size=12))
def test_config_loader_never_crashes(lines):
    _expect_ok_or_ours(load_config_text, "\n".join(lines))


@SETTINGS
@given(st.sampled_from(sorted(GLUE_TASKS)), st.lists(tsv_line, max_size=8), st.binary(max_size=20))
def test_glue_reader_never_crashes(tmp_path_factory, task, lines, junk):
    path = tmp_path_factory.mktemp("glue") / "f.tsv"
    path.write_bytes("\n".join(lines).encode("utf-8") + junk)
    _expect_ok_or_ours(read_glue_tsv, path, task)


json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                          lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=8)


@SETTINGS
@given(st.lists(st.one_of(st.dictionaries(st.sampled_from(["q", "p", "label", "x"]), json_value, max_size=4).map(json.dumps),
                          st.text(max_size=20)), max_size=6),
       st.sampled_from([None, ["false", "true"], ["0", "1"]]))
def test_jsonl_reader_never_crashes(tmp_path_factory, lines, label_list):
    path = tmp_path_factory.mktemp("jsonl") / "f.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    _expect_ok_or_ours(read_jsonl, path, "q", "p", "label", label_list)


@SETTINGS
@given(st.binary(max_size=200))
def test_text_lines_reader_never_crashes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("txt") / "f.txt"
    path.write_bytes(data)
    _expect_ok_or_ours(read_text_lines, path)
