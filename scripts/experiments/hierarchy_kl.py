"""How much an image-level prior could save: fit a whole image's patch posteriors with a shipped
photo prior and its encoder settings (the fitting only, no coding), then compare their KL to the
prior with their KL to the image's own closed-form prior (the mean and spread of its patches'
posteriors, the M-step of `combiner.prior_learning.update_prior` on one image), plus an estimate
of what coding that image-level mean would cost.

    python scripts/experiments/hierarchy_kl.py photo-q1 kodim03 [kodim20 ...] [--set fit_steps=600]

One JSON line per image, in bits for the whole image: ``kl_prior`` (the posteriors' KL to the
prior, what the encoder pays for), ``kl_image`` (to the image-level prior), ``image_mean_cost``
(KL of N(m_img, s_img^2 / P) to the prior, i.e. sending the image-level mean to the precision
that P patches determine it) and ``saving`` = 1 - (kl_image + image_mean_cost) / kl_prior.
``--group G [G ...]`` adds, for each G, a middle level of G x G neighbouring patches (fields
under ``groups``): ``kl_group`` (each patch to its
group's closed-form prior), ``group_mean_cost`` (each group's mean, to the precision its patches
determine it, against the image-level prior) and ``saving_3`` = 1 - (kl_group + group_mean_cost +
image_mean_cost) / kl_prior; groups of few patches make ``kl_group`` optimistic. It is
an estimate only: the posteriors were fitted against the prior, not against an image-level one
(RECOMBINER's hierarchical prior, which learns and codes the upper levels, is what it estimates).
"""

from __future__ import annotations

import json
import math

import torch
from crop_experiment import image_parser, parse_override

from combiner import codec, quality, registry
from combiner.inr import kl_per_param
from combiner.media import read
from combiner.prior_learning import update_prior
from combiner.tiling import patch_grid


class _Fitted(Exception):
    """Carries the model out of the encoder once the fitting is done."""


def fitted_posteriors(signal, prior, overrides: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch posteriors (mu, sigma) [P, D] (row-major patch order) after the encoder's fitting."""
    _, opts = quality.resolve(signal, prior=prior, overrides={**overrides, "progress": False})
    real_fit = codec.fit

    def fit_then_stop(model, *args, **kwargs):
        real_fit(model, *args, **kwargs)
        raise _Fitted(model)

    codec.fit = fit_then_stop
    try:
        codec.encode_signal(signal, prior, opts)
    except _Fitted as done:
        with torch.no_grad():
            return tuple(t.detach().float() for t in done.args[0].posterior())  # type: ignore[return-value]
    finally:
        codec.fit = real_fit
    raise RuntimeError("the encoder never called fit")


def kl_bits(mu, sigma, mean, std) -> float:
    return float(kl_per_param(mu, sigma, mean, std).sum()) / math.log(2.0)


def closed_form(mu, sigma):
    """The M-step of one set of posteriors [n, D]: its mean and spread [D]."""
    return update_prior(mu, sigma, min_std=1e-8)


def group_level(mu, sigma, grid: tuple[int, int], g: int, m_img, s_img) -> tuple[float, float]:
    """(KL of every patch to its G x G group's closed-form prior, cost of the group means) in bits."""
    rows, cols = grid
    ids = torch.arange(rows * cols).view(rows, cols)
    kl, cost = 0.0, 0.0
    for r in range(0, rows, g):
        for c in range(0, cols, g):
            members = ids[r:r + g, c:c + g].reshape(-1)
            m_g, s_g = closed_form(mu[members], sigma[members])
            kl += kl_bits(mu[members], sigma[members], m_g, s_g)
            cost += kl_bits(m_g, s_g / math.sqrt(len(members)), m_img, s_img)
    return kl, cost


def main() -> None:
    ap = image_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--group", type=int, nargs="+", default=[], help="add a level of G x G neighbouring patches")
    a = ap.parse_args()
    prior = registry.resolve(a.prior)
    overrides = dict(parse_override(item) for item in a.set)
    mean, std = torch.from_numpy(prior.mean), torch.from_numpy(prior.std)
    for name in a.images:
        signal = read(a.data / f"{name}.png")
        mu, sigma = fitted_posteriors(signal, prior, overrides)
        sigma = sigma.clamp_min(1e-8)
        P = mu.shape[0]
        m_img, s_img = closed_form(mu, sigma)
        kl_prior = kl_bits(mu, sigma, mean, std)
        kl_image = kl_bits(mu, sigma, m_img, s_img)
        cost = kl_bits(m_img, s_img / math.sqrt(P), mean, std)
        row = dict(prior=a.prior, image=name, overrides=overrides, patches=P,
                   kl_prior=round(kl_prior), kl_image=round(kl_image), image_mean_cost=round(cost),
                   saving=round(1.0 - (kl_image + cost) / kl_prior, 4))
        grid = patch_grid(signal.values.shape, prior.kind.patch_shape)
        row["groups"] = {}
        for g in a.group:
            kl_group, group_cost = group_level(mu, sigma, grid, g, m_img, s_img)
            row["groups"][g] = dict(kl_group=round(kl_group), group_mean_cost=round(group_cost),
                                    saving_3=round(1.0 - (kl_group + group_cost + cost) / kl_prior, 4))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
