"""utils/allocator.py: with keep_freed_memory a freed 200 MB buffer stays in the process (RSS does not
fall back) and the next allocation reuses it; without it glibc unmaps the buffer on free."""
import platform
import subprocess
import sys

import pytest

from tests.helpers import REPO

SCRIPT = """
import sys, torch
from utils.allocator import keep_freed_memory
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
print(keep_freed_memory(sys.argv[1] == "on"))
x = torch.ones(50 * 2 ** 20)  # 200 MB, touched
peak = rss_mb()
del x
print(round(peak - rss_mb()))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_buffers_stay_in_the_process_only_when_asked():
    out = {}
    for mode in ("on", "off"):
        proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True, check=True)
        done, released_mb = proc.stdout.split()
        out[mode] = (done, int(released_mb))
    assert out["on"][0] == "True" and out["off"][0] == "False"
    assert out["on"][1] < 20  # kept for reuse
    assert out["off"][1] > 150  # unmapped on free (glibc's default for blocks this large)
