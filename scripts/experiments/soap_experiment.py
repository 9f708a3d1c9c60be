"""Crop experiments with SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using
Adam") instead of Adam for the posterior means, from the maintained `pytorch-optimizer` package
(``pip install pytorch-optimizer``; not a dependency of combiner).

    python scripts/experiments/soap_experiment.py LR_SCALE [--rho] kodim03 [kodim20 ...] [--set OPTION=VALUE ...]

Every fit of the encode (the main fit and the refinements) optimises the means with SOAP at
LR_SCALE times the encoder's learning rate, and the softplus-parameterised stds with Adam as
shipped (``--rho``: both with SOAP). SOAP needs each layer's parameters as a matrix: the flat
[P, D] means are viewed as [P, in, out] weights and [P, out] biases per layer, and each of
those is preconditioned along its in and out dimensions with factors shared by all patches (never
along the patches: a Kodak image has 96 of them, a crop 16). Betas (0.9, 0.999) as the encoder's
Adam, no weight decay, eigenbases refreshed every 10 steps. Other arguments as in
crop_experiment.py (prior photo-q1, one thread). Prints one JSON line per image.
"""

from __future__ import annotations

import sys
from itertools import chain
from pathlib import Path

import torch
from pytorch_optimizer import SOAP

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crop_experiment  # noqa: E402

from combiner import registry  # noqa: E402

ADAM = torch.optim.Adam


class PerLayerSOAP(SOAP):
    """SOAP that leaves dimension 0 (the patches) of every parameter unpreconditioned."""

    def init_pre_conditioner(self, grad, state, *args, **kwargs) -> None:
        super().init_pre_conditioner(grad, state, *args, **kwargs)
        state["GG"][0] = []

    def update_pre_conditioner(self, grad, state, step, max_precondition_dim=10000,
                               precondition_1d=False, merge_dims=False) -> None:
        for dim in range(1, grad.dim()):
            others = [*chain(range(dim), range(dim + 1, grad.dim()))]
            state["GG"][dim].lerp_(torch.tensordot(grad, grad, dims=[others, others]),
                                   weight=1.0 - state["shampoo_beta"])
        if state["Q"] is None:
            state["Q"] = self.get_orthogonal_matrix(state["GG"])
        if step > 0 and step % state["precondition_frequency"] == 0:
            state["Q"] = self.get_orthogonal_matrix_qr(state, max_precondition_dim, merge_dims)


class LayerGroup(dict):
    """The optimiser's one param group as the encoder sees it: setting "lr" sets both parts."""

    def __init__(self, owner: MeansWithSOAP) -> None:
        super().__init__(lr=owner.lr)
        self.owner = owner

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if key == "lr":
            self.owner.set_lr(value)


class MeansWithSOAP:
    """Stands in for ``torch.optim.Adam([mu, rho], lr)`` in `combiner.fit` and `combiner.codec`."""

    def __init__(self, params, lr: float, config, scale: float, soap_rho: bool) -> None:
        mu, rho = params
        self.params, self.lr, self.scale = [mu, rho], lr, scale
        on_soap = [mu, rho] if soap_rho else [mu]
        self.views = [(t, cols, shape, t.detach()[:, cols].view(shape))
                      for t in on_soap for cols, shape in layer_views(config, t.shape[0])]
        self.soap = PerLayerSOAP([v for *_, v in self.views], lr=lr * scale, betas=(0.9, 0.999),
                                 weight_decay=0.0, precondition_frequency=10, max_precondition_dim=64)
        self.adam = None if soap_rho else ADAM([rho], lr=lr)
        self.param_groups = [LayerGroup(self)]

    def set_lr(self, lr: float) -> None:
        for g in self.soap.param_groups:
            g["lr"] = lr * self.scale
        for g in self.adam.param_groups if self.adam else ():
            g["lr"] = lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for t, cols, shape, view in self.views:  # the views share the flat tensors' storage
            view.grad = t.grad[:, cols].reshape(shape)
        self.soap.step()
        if self.adam:
            self.adam.step()


def layer_views(config, patches: int) -> list[tuple[slice, tuple[int, ...]]]:
    """(columns of the flat [P, D] parameters, shape) of every layer's weights and biases."""
    views = []
    for (w0, b0, end), (i, o) in zip(config.layer_offsets(), config.layer_shapes):
        views += [(slice(w0, b0), (patches, i, o)), (slice(b0, end), (patches, o))]
    return views


def main() -> None:
    scale, *rest = sys.argv[1:]
    soap_rho = "--rho" in rest
    rest = [a for a in rest if a != "--rho"]
    config = registry.resolve("photo-q1").config
    torch.optim.Adam = lambda params, lr=1e-3: MeansWithSOAP(list(params), lr, config, float(scale), soap_rho)
    sys.argv = [sys.argv[0], "photo-q1", *rest, "--set", "threads=1", "--set", "compile=true"]
    crop_experiment.main()


if __name__ == "__main__":
    main()
