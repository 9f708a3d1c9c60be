"""Running on several processes or machines with ``torch.distributed``.

combiner splits two kinds of work over the ranks of a process group (started by ``torchrun``,
see ``docs/distributed.md``):

- learning a prior (``combiner learn-prior``, ``training/train_priors.py``): every rank fits a
  contiguous share of the training posteriors, and each closed-form update is computed from
  sums over all of them (:func:`sum_across`);
- coding a dataset (``combiner eval``, ``combiner encode-folder``): every rank codes a share of
  the items on its own device (:func:`device_for_rank`) and rank 0 gathers the results.

Only small tensors (a prior's means, stds and training KL, the mixing matrices) and result rows
cross between ranks, always on the CPU, so the process group uses the ``gloo`` backend whether
the ranks compute on CPUs or GPUs. Without an initialised process group (or with one rank)
every function here is the identity of the one-process program: no collective runs, and no
result differs from one computed without this module.

PyTorch is imported only once a process group is asked for: decoding never needs it.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["active", "barrier", "broadcast_object", "device_for_rank", "finish", "gather_objects",
           "init_from_env", "is_main", "launched_ranks", "rank", "share", "sum_across", "weighted_average",
           "world_size", "TIMEOUT"]

# How long a rank waits for the others at a collective (a rank that codes a long batch keeps the
# others waiting at the end of `combiner eval`). torch.distributed's default is 30 minutes.
TIMEOUT = datetime.timedelta(hours=24)
_STARTED_HERE = False


def _dist() -> Any:
    """torch.distributed if PyTorch is loaded and a process group is initialised, else None (a
    process that never imported PyTorch cannot be in a process group)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    """The number of ranks of the initialised process group; 1 without one."""
    dist = _dist()
    return 1 if dist is None else int(dist.get_world_size())


def rank() -> int:
    """This process's rank in the process group; 0 without one."""
    dist = _dist()
    return 0 if dist is None else int(dist.get_rank())


def is_main() -> bool:
    """Whether this process writes the shared outputs (rank 0, or the only process)."""
    return rank() == 0


def launched_ranks() -> int:
    """The number of processes the launcher started (``WORLD_SIZE``, set by ``torchrun``); 1
    without a launcher. Unlike :func:`world_size` it needs no process group."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def active() -> bool:
    """Whether work is split: a process group of more than one rank is initialised."""
    return world_size() > 1


def init_from_env() -> bool:
    """Join the process group ``torchrun`` (or SLURM with ``torchrun``) describes in the
    environment (``WORLD_SIZE`` > 1, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), with the gloo
    backend. Returns whether a process group of more than one rank is now initialised; does
    nothing when one already is or when the environment names a single process."""
    global _STARTED_HERE
    if launched_ranks() <= 1:
        return active()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=TIMEOUT)
        _STARTED_HERE = True
    return active()


def finish(wait: bool = True) -> None:
    """Leave the process group if :func:`init_from_env` created it. ``wait``: first wait for
    every rank to get here, so that no rank closes its connections while another still uses them
    (gloo's threads could then abort the process at exit); only when the work succeeded, since a
    failed rank's peers may never get here."""
    global _STARTED_HERE
    dist = _dist()
    if dist is not None and _STARTED_HERE:
        if wait:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()  # nothing of the group left over for the interpreter's shutdown
    _STARTED_HERE = False


def device_for_rank(preferred: str | None) -> str | None:
    """The device a rank computes on. With one process: ``preferred`` unchanged (None: the
    encoder's automatic choice). With several: GPU ``LOCAL_RANK`` when CUDA is available and
    ``preferred`` is None or ``"cuda"``, the CPU when there is no GPU, else ``preferred`` (an
    explicit ``cuda:K`` or ``cpu``). The GPU becomes the current CUDA device, so that CuPy's
    search runs on it too."""
    if not active():
        return preferred
    import torch

    if preferred not in (None, "cuda"):
        return preferred
    if not torch.cuda.is_available():
        if preferred == "cuda":
            raise ValueError("--device cuda: PyTorch sees no GPU")
        return "cpu"
    local = int(os.environ.get("LOCAL_RANK", rank())) % torch.cuda.device_count()
    torch.cuda.set_device(local)
    try:
        import cupy

        cupy.cuda.Device(local).use()
    except ImportError:
        pass
    return f"cuda:{local}"


def share(count: int, of_rank: int | None = None, ranks: int | None = None) -> range:
    """The contiguous share of ``range(count)`` of a rank (this one by default): shares differ in
    length by at most one, lower ranks take the longer ones, and they cover ``range(count)`` in
    rank order."""
    r = rank() if of_rank is None else of_rank
    n = world_size() if ranks is None else ranks
    base, extra = divmod(count, n)
    start = r * base + min(r, extra)
    return range(start, start + base + (1 if r < extra else 0))


def sum_across(t: torch.Tensor) -> torch.Tensor:
    """The float64 sum of ``t`` over the ranks, bit-identical on every rank (rank 0's reduced
    tensor is broadcast, whatever the backend's reduction order); ``t`` as float64 with one rank."""
    import torch

    out = t.detach().to(device="cpu", dtype=torch.float64).clone()
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        dist.broadcast(out, src=0)
    return out


def weighted_average(t: torch.Tensor, weight: float) -> torch.Tensor:
    """The average over the ranks of each rank's ``t`` weighted by its ``weight`` (ranks of weight
    0 do not count), identical on every rank and of ``t``'s dtype; ``t`` itself with one rank.
    All weights 0: the plain average."""
    import torch

    if not active():
        return t
    packed = torch.cat([t.detach().reshape(-1).to(torch.float64) * float(weight),
                        torch.tensor([float(weight)], dtype=torch.float64)])
    total = sum_across(packed)
    if total[-1] <= 0:
        return (sum_across(t.reshape(-1)) / world_size()).to(t.dtype).reshape(t.shape)
    return (total[:-1] / total[-1]).to(t.dtype).reshape(t.shape)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable); ``obj`` with one rank."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0, None on the others; ``[obj]`` with one rank."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    """Wait until every rank is here (nothing with one rank)."""
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        dist.barrier()
