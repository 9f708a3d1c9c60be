"""How hard the encoder works: `EncodeOptions` (no PyTorch needed to build one)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EncodeOptions"]


@dataclass(frozen=True)
class EncodeOptions:
    """How hard the encoder works. Defaults suit a CPU; raise ``fit_steps`` on a GPU."""

    fit_steps: int = 1500
    lr: float = 1e-3
    refine_steps: int = 10  # fine-tuning steps after each coded round of blocks
    init_std_ratio: float = 0.5  # initial posterior std as a fraction of the prior std
    beta: float | None = None  # starting beta; default: the prior's training beta
    control_every: int = 25
    target_bits: float | None = None  # per-block KL target; default kappa - 0.5
    pixel_fraction: float = 1.0
    seed: int = 0
    device: str | None = None
    early_stop: bool = True
    progress: bool = True
    # Blocks that span patches (combiner.blocks.spread) instead of each patch's own blocks.
    spread_blocks: bool = False
    # Where the A* search runs: "cpu" (Rust), "gpu" (the CUDA kernel, same indices), or "auto":
    # the GPU when fitting on CUDA and CuPy is installed.
    search: str = "auto"
