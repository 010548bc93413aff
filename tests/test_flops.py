"""FLOPs of the matching models: the analytic count against torch's FlopCounterMode (within 5%; in fact
exact, both count matrix products only), the layer formula by hand, the offline/online split, and tools/flops.py."""
import json
import subprocess
import sys

import pytest

from init.config import load_config
from tests.helpers import REPO, tiny_config_text, write_tiny_model
from tests.match_helpers import LD, LQ, match_config_text, write_match_teacher, write_pair_data
from tools.flops import build, report
from efficiency.flops import encoder_layer_flops


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("flops")
    return write_pair_data(root / "data"), write_match_teacher(root / "teacher", layers=3), write_tiny_model(root / "student", seed=1)


CASES = {
    "teacher": ("bert_bipartition", False, {}),
    "siamese": ("virt", False, {"virt": {"model_type": "siamese", "use_kd_att": "false", "use_resnet_predict": "false"}}),
    "late_fusion": ("virt", True, {"virt": {"model_type": "late_fusion", "use_kd_att": "true"}}),
    "dc_bert": ("dc_bert", True, {}),
    "dc_bert_linear": ("dc_bert", True, {"dc_bert": {"last_layer_model_type": "linear"}}),
}


def test_layer_formula_by_hand():
    # L = 10 tokens, H = 32, I = 64: q,k,v,o 4*2*10*32*32 = 81920; q k^T and A v 2*2*10*10*32 = 12800; FFN 2*2*10*32*64 = 81920
    assert encoder_layer_flops(10, 32, 64) == 81920 + 12800 + 81920


@pytest.mark.parametrize("case", sorted(CASES))
def test_analytic_count_agrees_with_flop_counter_mode(tmp_path, setup, case):
    data, teacher, student = setup
    name, with_teacher, sections = CASES[case]
    source = teacher if name in ("bert_bipartition", "dc_bert") else student
    (tmp_path / "c.config").write_text(match_config_text(source, data, name, teacher if with_teacher else None, **sections))
    rep = report(build(load_config(tmp_path / "c.config")), repeats=2)
    for part in ("offline", "online"):
        if rep["analytic"][part]:
            assert abs(rep["measured"][part] / rep["analytic"][part] - 1) < 0.05, (part, rep)
        else:
            assert rep["measured"][part] == 0
    assert rep["lengths"] == {"query": LQ, "doc": LD} and rep["latency_ms"]["online"] > 0
    if case == "teacher":
        assert rep["analytic"]["offline"] == 0  # a cross-encoder has nothing to cache
    else:
        assert rep["analytic"]["offline"] > 0


def test_two_tower_online_cost_is_below_the_cross_encoder(tmp_path, setup):
    data, teacher, _ = setup
    (tmp_path / "t.config").write_text(match_config_text(teacher, data, "bert_bipartition"))
    (tmp_path / "s.config").write_text(match_config_text(teacher, data, "virt", virt={"model_type": "siamese", "use_kd_att": "false"}))
    cross = build(load_config(tmp_path / "t.config")).analytic_flops()["online"]
    tower = build(load_config(tmp_path / "s.config")).analytic_flops()
    assert tower["online"] < cross and tower["offline"] < cross


def test_flops_cli_prints_the_table_and_rejects_other_models(tmp_path, setup):
    data, teacher, _ = setup
    (tmp_path / "t.config").write_text(match_config_text(teacher, data, "dc_bert", teacher))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "flops.py"), "--config", str(tmp_path / "t.config"),
                           "--repeats", "1", "--json"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rep["model"] == "DCBert" and rep["agreement"]["online"] == pytest.approx(1.0, abs=0.05)
    (tmp_path / "b.config").write_text(tiny_config_text(teacher, data, "bert_cls", data={"task": "RTE"}))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "flops.py"), "--config", str(tmp_path / "b.config")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: [model] model_name = bert_cls: tools/flops.py covers the matching "
                                                "models (bert_bipartition, virt, dc_bert)"]
