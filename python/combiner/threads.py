"""How many threads the encoder uses: the cores it is given, no more than its work can use, and
fewer when other processes are running on them.

PyTorch's intra-op threads (OpenMP) wait for each other at the end of every operation. When a
thread's core is taken by another process, every fitting step waits for the scheduler to give it
back, and a 2-thread fit on a busy 2-core machine ran three times slower than a 1-thread fit
(``benches/threads_bench.py``). So the encoder asks for threads as follows:

- ``threads`` given (``EncodeOptions.threads``, ``--threads``) or ``COMBINER_THREADS`` set: that
  many, at most the cores the process may run on;
- otherwise: the cores the process may run on, minus the other processes running right now
  (``/proc/loadavg``, Linux; none elsewhere), and at most one thread per ``POINTS_PER_THREAD``
  points of a fitting step (a small signal gains nothing from more threads).

PyTorch (fitting) and the Rust search use the same count, one after the other, never together.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["available_cores", "others_running", "resolve", "torch_threads", "ENV", "POINTS_PER_THREAD"]

ENV = "COMBINER_THREADS"
# Points (pixels or samples) of one fitting step that keep one more thread busy. A 32 x 32
# thumbnail (1,024 points) runs on one thread; a Kodak image at a quarter of its pixels (98,304)
# on up to three.
POINTS_PER_THREAD = 32768


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def others_running() -> int:
    """Runnable processes other than this one right now (Linux ``/proc/loadavg``; 0 elsewhere)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def resolve(threads: int | None, points_per_step: int) -> int:
    """The thread count for an encode whose fitting steps see ``points_per_step`` points.

    Raises ValueError for a ``threads`` (or ``COMBINER_THREADS``) that is not a positive integer.
    """
    cores = available_cores()
    if threads is None and os.environ.get(ENV):
        text = os.environ[ENV]
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{ENV} must be a positive integer, got {text!r}")
        threads = int(text)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        return min(threads, cores)
    useful = max(1, -(-points_per_step // POINTS_PER_THREAD))
    free = max(1, cores - others_running())
    return min(useful, free)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``n`` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
