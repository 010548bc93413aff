"""Peak resident memory as the teacher-cache and epoch log lines report it: in MiB, and a high-water mark."""
import subprocess
import sys

from tests.helpers import REPO

CHILD = """
from utils.memory import peak_rss_mb
before = peak_rss_mb()
block = bytearray(600 * 2 ** 20)  # zero-filled by the allocator and touched: 600 MiB resident
for i in range(0, len(block), 4096):
    block[i] = 1
during = peak_rss_mb()
del block
print(before, during, peak_rss_mb())
"""


def test_peak_rss_counts_mib_and_keeps_the_high_water_mark():
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, check=True)
    before, during, after = map(float, out.stdout.split())
    assert 600 <= during <= before + 650  # the block is resident at once; KiB read as MiB would be 1024x off
    assert after == during  # freeing does not lower a peak
