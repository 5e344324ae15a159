"""Keep a long scan's resident memory flat: large numpy buffers go straight back to the system.

A scan allocates and frees tens of thousands of window-sized buffers (~330 KB) on two threads. glibc's
malloc raises its mmap threshold each time such a buffer is freed, after which they come from the heap
and its per-thread arenas, which fragment and are never returned: peak RSS then grew with the number of
windows (BENCHMARKS.md, "Memory and window count"). Fixing the threshold at glibc's own default keeps
buffers above 128 KiB mmapped, so freeing them returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024
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
