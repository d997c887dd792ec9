"""The server pins glibc's mmap threshold, so big freed buffers go back to the system."""
import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# In a fresh process, as a server starts: in a used one, big requests are served from heap chunks freed earlier.
PROGRAM = """
import sys
import numpy as np, psutil
from webapp.memory import pin_mmap_threshold
if sys.argv[1] == "pinned":
    assert pin_mmap_threshold()
process = psutil.Process()
big = np.ones(24 * 2**20 // 8)
del big  # unpinned, freeing this raises the threshold to 24 MiB
before = process.memory_info().rss
buffers = [np.ones(4 * 2**20 // 8) for _ in range(8)]
del buffers
print((process.memory_info().rss - before) // 2**20)
"""


def kept_mib(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(run.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_big_buffers_leave_the_process():
    assert kept_mib("default") >= 24  # what the pin is for: glibc keeps them
    assert kept_mib("pinned") < 8
