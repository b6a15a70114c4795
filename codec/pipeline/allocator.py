"""Keep freed memory in the process during an encoder's optimisation (glibc only).

Each optimisation step allocates and frees the same large tensors (a Kodak image's hidden layer is
25-75 MB). glibc serves blocks over its mmap threshold with fresh mmap'd pages and returns them to
the system on free, so every step pays a page fault per 4 KiB page; on a 2-core AMD EPYC VM (AVX2)
that was half of the CPU time as system time. With mmap off and the heap trimmed only past 1 GiB the
same pages are reused: 50 x (75 MB alloc + multiply) took 0.95 s instead of 4.33 s, 1 thread
(scripts/bench_overfit.py measures the whole step). Elsewhere (musl, macOS, Windows) this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30
DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD = 65536, 128 * 1024

_done = False
_held = False  # inside glibc_heap(): glibc's defaults stay


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to serve large blocks from the heap and keep up to 1 GiB freed (once per
    process); False where the C library is not glibc."""
    global _done
    if _done:
        return True
    if _held or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(libc.mallopt(M_MMAP_MAX, 0))
    except (OSError, AttributeError):
        return False
    return _done


@contextmanager
def glibc_heap():
    """glibc's defaults (mmap for large blocks, trim past 128 KiB) inside the block, where
    retain_freed_memory does nothing: the baseline of scripts/bench_overfit.py, in one process."""
    global _done, _held
    if _done:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        _done = False
    _held = True
    try:
        yield
    finally:
        _held = False
