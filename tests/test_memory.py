"""The server pins glibc's mmap threshold, so big freed buffers go back to the system."""
import platform

import numpy as np
import psutil
import pytest

from webapp.memory import pin_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_big_buffers_leave_the_process():
    assert pin_mmap_threshold()
    process = psutil.Process()
    big = np.ones(24 * 2**20 // 8)
    del big  # unpinned, freeing this would raise the threshold to 24 MiB
    before = process.memory_info().rss
    buffers = [np.ones(4 * 2**20 // 8) for _ in range(8)]
    del buffers
    assert process.memory_info().rss - before < 16 * 2**20
