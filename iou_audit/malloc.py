"""Let the process give freed large arrays back to the OS (glibc): the audits' peak memory.

glibc serves an allocation above its mmap threshold (128 KiB) with its own ``mmap``, returned to
the OS on free, but raises that threshold to the size of every such block freed (up to 32 MiB).
An audit frees thousands of per-batch arrays of 0.1-10 MB; after the first ones, later ones come
from the heap, and the heap keeps their pages after they are freed. Joining the batches (the
agreement audit's ``merge_parts``) then allocates the joined arrays beside the freed-but-kept
batch arrays: on 20,000 bench samples that held 170 MB (peak 1,193 -> 1,021 MB with the threshold
fixed). :func:`fix_mmap_threshold` fixes it at 128 KiB (``mallopt(M_MMAP_THRESHOLD)``, which also
turns the dynamic raise off), once per process, before an audit. It changes where memory comes
from, not any value computed. Skipped off glibc, when ``MALLOC_MMAP_THRESHOLD_`` is set (the
user's own choice) or when ``IOU_AUDIT_MALLOC_TUNING=0``.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's default starting value
_state = {"done": False}


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 128 KiB (see the module docstring); True when it was set.

    >>> isinstance(fix_mmap_threshold(), bool)
    True
    """
    if _state["done"]:
        return True
    if (not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or os.environ.get("IOU_AUDIT_MALLOC_TUNING", "1") == "0"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _state["done"] = ok
    return ok
