"""A prior with another block index size (kappa) at the same rate: the same network, mean, std
and mixing matrices, the partition redrawn into J' = round(J * kappa / kappa') blocks.

    python scripts/experiments/kappa_variant.py photo-q1 12 /tmp/photo-q1-k12.safetensors

Each parameter's share of the rate is estimated from the shipped partition (a block of n
parameters carries about kappa bits, so kappa / n each), then `partition_for_rate` cuts the
parameters into blocks of kappa' bits; the budget is adjusted until there are exactly J' blocks,
so that a coded signal has the same number of index bits (J * kappa, up to rounding of J').
The encoder search costs about 2^kappa per bit sent, so kappa' = 12 searches 16x fewer
candidates than 16 per bit.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from combiner import registry
from combiner.prior_learning import partition_for_rate


def redrawn(prior, kappa: int):
    J = prior.num_blocks
    target = round(J * prior.kappa / kappa)
    sizes = np.bincount(prior.block_index)
    share = prior.kappa / sizes[prior.block_index]  # bits per parameter
    lo, hi = 0.5 * target * kappa, 2.0 * target * kappa
    for _ in range(60):
        budget = 0.5 * (lo + hi)
        index = partition_for_rate(share, kappa, budget, seed=prior.seed)
        count = int(index.max()) + 1
        if count == target:
            break
        lo, hi = (budget, hi) if count < target else (lo, budget)
    else:
        raise SystemExit(f"no budget gives exactly {target} blocks")
    kind = dataclasses.replace(prior.kind, name="")  # an experiment, not a shipped prior
    encoder = prior.encoder
    if encoder is not None and encoder.target_bits is not None:  # the same margin below kappa
        encoder = dataclasses.replace(encoder, target_bits=encoder.target_bits - prior.kappa + kappa)
    return dataclasses.replace(prior, kappa=kappa, block_index=index, kind=kind, encoder=encoder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prior")
    ap.add_argument("kappa", type=int)
    ap.add_argument("out")
    a = ap.parse_args()
    prior = registry.resolve(a.prior)
    variant = redrawn(prior, a.kappa)
    variant.save(a.out)
    print(f"{a.out}: kappa {variant.kappa}, {variant.num_blocks} blocks "
          f"({variant.num_blocks * variant.kappa} bits per patch, was {prior.num_blocks * prior.kappa})")


if __name__ == "__main__":
    main()
