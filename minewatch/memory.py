"""Keep a long scan's resident memory flat: large numpy buffers go straight back to the system.

A scan allocates and frees tens of thousands of window-sized buffers (~330 KB) and their batches (~10 MB) on
two threads. glibc's malloc raises its mmap threshold each time such a buffer is freed, after which even the
batches come from the heap and its per-thread arenas, which fragment and are never returned: peak RSS then grew
with the number of windows (BENCHMARKS.md, "Memory and window count"). Fixing the threshold stops that growth.
It is fixed at 1 MiB, not glibc's 128 KiB default: at 128 KiB every window buffer was its own mmap and page
faults, and a 4096 px scan took 1.53 s instead of 1.15 s (BENCHMARKS.md), for about 35 MB less peak RSS; at
1 MiB the batches are still mapped and returned, and RSS stays as flat in window count (x1.12 from 10k to 104k
windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1024 * 1024
_done = False


def keep_large_buffers_mmapped() -> bool:
    """Fix glibc's mmap threshold (once per process); True where that applied (Linux with glibc)."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        _done = False
    log.debug("malloc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, _done)
    return _done


def proc_kib(path: str, key: str) -> int | None:
    """A ``key:  N kB`` line of a Linux /proc file (``/proc/meminfo``, ``/proc/self/status``) in KiB; None where
    the file or the line is absent (other systems)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
