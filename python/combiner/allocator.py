"""Keep freed tensor memory inside the process (Linux with glibc): a CPU speed-up for fitting.

PyTorch's CPU tensors come from ``malloc``. glibc serves blocks above its mmap threshold (128 KiB,
raised dynamically up to 32 MiB) with fresh ``mmap`` calls and gives freed memory at the top of
the heap back to the kernel. A fitting step allocates and frees the same few-megabyte activation
tensors every iteration, so each step can page-fault all of them in again as fresh zeroed pages:
on the development machine a batch of five Kodak images spent 58 % of its time in the kernel and
ran 2.3 times slower than with the settings below (``benches/allocator_bench.py``).

``keep_freed_memory`` raises both thresholds, so freed blocks stay in the heap for the next step.
The peak memory of a run does not change; the process just keeps its peak until it exits. The
``combiner`` command line and the training script call it; library users may call it once.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
DEFAULT_LIMIT = 1 << 30  # blocks above 1 GiB still come from mmap and go back at once


def keep_freed_memory(limit: int = DEFAULT_LIMIT) -> bool:
    """Set glibc's mmap and trim thresholds to ``limit`` bytes; False where that does not apply
    (not Linux, not glibc) or glibc refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no glibc mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
