"""How the weights of one coded signal are cut into REC blocks, and in which rounds they are coded.

A signal cut into P patches has P x D weights, flat index ``p * D + i`` (patch p, parameter i of
the layout in `combiner.inr`). A `BlockLayout` lists the flat indices of every block (block id b
keys its candidates and is its position in the bitstream's index list) and the rounds of the
progressive coder: the blocks of one round are searched in one call, then the weights not yet
coded are fine-tuned. Two layouts exist:

- **per patch** (`per_patch`): every patch is split by the prior's partition into J blocks; block
  ``p * J + j`` is part j of patch p, and round j codes part j of every patch. Each patch gets the
  same number of bits, whatever it shows.
- **spread** (`spread`): the P x D weights are shuffled by a permutation that encoder and decoder
  derive from the seed, then cut into P x J blocks of (nearly) equal size; round r codes blocks
  ``r * P .. r * P + P - 1``. A block mixes weights of many patches, so the per-block rate control
  constrains only the blocks' totals and a patch may spend more or fewer bits than another: a flat
  sky less, foliage more (RECOMBINER's random permutation across patches). The file has the same
  number of blocks, hence the same size, as with the per-patch layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from combiner import _core
from combiner.prior import Prior

__all__ = ["BlockLayout", "layout", "per_patch", "spread", "prior_parts"]


@dataclass(frozen=True)
class BlockLayout:
    num_patches: int
    num_params: int  # D, weights per patch
    members: list[np.ndarray]  # flat indices of each block, ascending
    rounds: list[np.ndarray]  # block ids coded in each round

    @property
    def num_blocks(self) -> int:
        return len(self.members)

    def gather(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flat indices of blocks ``ids``, concatenated in that order, and each block's size."""
        chosen = [self.members[b] for b in ids]
        return np.concatenate(chosen), np.array([len(m) for m in chosen], dtype=np.int64)

    def assignment(self) -> np.ndarray:
        """Block id of every weight, int64 [P, D]."""
        out = np.empty(self.num_patches * self.num_params, dtype=np.int64)
        for b, m in enumerate(self.members):
            out[m] = b
        return out.reshape(self.num_patches, self.num_params)


def prior_parts(prior: Prior) -> list[np.ndarray]:
    """Parameter indices of each part j of the prior's partition (ascending)."""
    order = np.argsort(prior.block_index, kind="stable")
    counts = np.bincount(prior.block_index, minlength=prior.num_blocks)
    return np.split(order, np.cumsum(counts)[:-1])


def per_patch(prior: Prior, num_patches: int) -> BlockLayout:
    """Block ``p * J + j``: part j of patch p; round j codes part j of every patch."""
    D, J = prior.config.num_params, prior.num_blocks
    parts = prior_parts(prior)
    members = [p * D + part for p in range(num_patches) for part in parts]
    rounds = [np.arange(num_patches) * J + j for j in range(J)]
    return BlockLayout(num_patches, D, members, rounds)


def spread(prior: Prior, num_patches: int, seed: int) -> BlockLayout:
    """P x J blocks of nearly equal size over the shuffled P x D weights; see the module docstring."""
    D, J = prior.config.num_params, prior.num_blocks
    total, n = num_patches * D, num_patches * J
    perm = _core.permutation(seed=seed, n=total)  # uint32: half the memory of int64 indices
    bounds = (np.arange(n + 1, dtype=np.int64) * total) // n
    members = [np.sort(perm[bounds[b]:bounds[b + 1]]) for b in range(n)]
    rounds = [np.arange(r * num_patches, (r + 1) * num_patches) for r in range(J)]
    return BlockLayout(num_patches, D, members, rounds)


def layout(prior: Prior, num_patches: int, spread_blocks: bool, seed: int) -> BlockLayout:
    """The layout a bitstream with these header fields uses."""
    return spread(prior, num_patches, seed) if spread_blocks else per_patch(prior, num_patches)
