"""Keep freed tensor memory inside the process (Linux with glibc): a CPU speed-up for fitting.

PyTorch's CPU tensors come from ``malloc``. glibc serves blocks above its mmap threshold (128 KiB,
raised dynamically up to 32 MiB) with fresh ``mmap`` calls and gives freed memory at the top of
the heap back to the kernel. A fitting step allocates and frees the same few-megabyte activation
tensors every iteration, so each step can page-fault all of them in again as fresh zeroed pages.
Measured on the development machine (``benches/allocator_bench.py``, photo-q1 fitting steps):

- one Kodak image (96 patches): 0.331 -> 0.299 s per step (1.11x), peak RSS 1.38 -> 1.32 GB;
- five Kodak images in one batch (what ``combiner eval`` does): 3.52 -> 1.52 s per step (2.3x),
  kernel time 41.8 -> 6.3 s over 20 steps, but peak RSS 2.27 -> 3.76 GB (4.49 GB in a run
  with a 256 MB trim threshold): freed blocks stay in the heap, and it fragments.

``keep_freed_memory`` raises both thresholds, so freed blocks stay in the heap for the next step.
The ``combiner`` command line and the training script call it; library users may call it once.
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
