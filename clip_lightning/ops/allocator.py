"""Keep freed memory in the process heap, so activations do not page-fault on every batch.

Inference allocates and frees activation-sized buffers (megabytes to hundreds of megabytes) in
every layer. By default glibc serves large buffers with fresh ``mmap``s and hands heap memory
back to the kernel once more than a little is free, so each batch touches new pages: 80,000 to
100,000 page faults per ViT-B/32 batch of 64 images in a fresh process, about 10% of a bf16
forward pass on a 2-core CPU. Raising glibc's mmap and trim thresholds keeps that memory for
reuse (``experiments/benchmark.py`` section g, ``experiments/allocator_ab.py``). The setting is
process-wide, so only the ``clip-lightning`` command applies it by itself; library users may
call :func:`keep_freed_memory`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc reads these at start-up; a user who set one has chosen their own policy.
_GLIBC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Serve allocations below ``threshold`` bytes from the heap and keep up to that much freed.

    Returns True when applied; False where the C library is not glibc (macOS, Windows, musl) or
    where the user set glibc's own ``MALLOC_*_THRESHOLD_`` / ``MALLOC_TOP_PAD_`` variables, which win.
    The cost: up to ``threshold`` bytes of freed memory stay with the process instead of the
    operating system until it exits.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be a positive number of bytes, got {threshold}")
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _GLIBC_ENV):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no C library found, or one without mallopt (musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    value = min(threshold, 2**31 - 1)  # mallopt takes a C int
    return bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
