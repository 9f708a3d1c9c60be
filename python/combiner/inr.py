"""Bayesian implicit neural representation (INR), batched over P patches.

Every patch ("tile") of a signal gets its own small SIREN with Fourier-feature inputs. All patches
share one architecture (`INRConfig`), so their parameters stack into dense ``[P, D]`` tensors and the
whole batch runs as a handful of batched matmuls, never a Python loop over patches.

Flat parameter layout (one INR, length ``D = config.num_params``), fixed and relied upon by the
prior, the partition into blocks and the bitstream:

    for each linear layer l = 0 .. depth (depth hidden layers + the output layer), in order:
        weight W_l, shape [in_l, out_l], row-major  (flat index = in_idx * out_l + out_idx)
        bias   b_l, shape [out_l]

with ``in_0 = 2 * in_dim * num_freqs``, ``out_l = width`` for hidden layers and
``out_depth = out_dim``. Weights are stored [in, out] (not PyTorch's [out, in]) so that ``x @ W``
needs no transpose.

Linear reparameterisation (after RECOMBINER): a prior may carry two mixing matrices per layer,
learned with the prior and fixed at test time: L_l [in_l + 1, in_l + 1] and R_l [out_l, out_l]. The
coded parameters of layer l form Theta_l = [W_l; b_l] ([in_l + 1, out_l]: exactly the flat layout
above) and the layer computes ``[x, 1] @ L_l @ Theta_l @ R_l``, i.e. its effective parameters are
``L_l Theta_l R_l``. The factorised Gaussian prior and posterior live on Theta, where learned L, R
make them a better fit than in the weights' own basis. RECOMBINER learns one dense matrix over each
layer's flattened parameters (about 10^6 entries per layer here, megabytes per prior); the
Kronecker factors L (x) R keep this to about 2 x 10^3 entries per layer, and because L acts on the
layer input and R on its output the local reparameterisation stays exact.
Flat mixing layout: for l = 0 .. depth: L_l then R_l, each row-major. ``mix=None`` means all
identities (the plain network), computed without the extra products.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from combiner.config import INRConfig
from combiner.options import Noise  # how a fitting step draws the network

__all__ = [
    "INRConfig",
    "BayesianINR",
    "fourier_features",
    "unflatten",
    "init_bounds",
    "siren_init",
    "kl_per_param",
    "mlp_forward",
    "network_forward",
    "identity_mix",
    "unflatten_mix",
    "effective_layers",
    "effective_variances",
    "noise_pool",
    "batched_linear",
    "pool_window",
    "Noise",
]

# Variance floor inside sqrt() of the local reparameterisation: keeps the gradient of sqrt finite
# when every contributing sigma is exactly 0 (all parameters fixed). Applied with clamp_min so it
# adds no noise whenever the true variance is larger than the floor.
_TINY_VAR = 1e-20


def fourier_features(coords: Tensor, freqs: Tensor) -> Tensor:
    """[..., in_dim] -> [..., 2 * in_dim * F] = [cos(pi x w) for all (axis, freq)] ++ [sin(...)].

    Inside each half the order is axis-major: (axis 0, f_0..f_{F-1}), (axis 1, f_0..), ...
    No learned parameters are involved, so this is the same for the mean and the sampled network.
    """
    xw = math.pi * coords.unsqueeze(-1) * freqs.to(coords.dtype)  # [..., in_dim, F]
    xw = xw.flatten(-2)
    return torch.cat([torch.cos(xw), torch.sin(xw)], dim=-1)


def unflatten(config: INRConfig, flat: Tensor) -> list[tuple[Tensor, Tensor]]:
    """flat [P, D] -> [(W [P, in, out], b [P, out]) per layer]; views, no copies."""
    if flat.shape[-1] != config.num_params:
        raise ValueError(f"expected last dim {config.num_params}, got {tuple(flat.shape)}")
    P = flat.shape[0]
    layers = []
    for (w0, b0, end), (i, o) in zip(config.layer_offsets(), config.layer_shapes):
        layers.append((flat[:, w0:b0].view(P, i, o), flat[:, b0:end]))
    return layers


def identity_mix(config: INRConfig) -> Tensor:
    """Flat mixing matrices that are all identities: the plain (unmixed) network, float32 [K]."""
    parts = []
    for i, o in config.layer_shapes:
        parts += [torch.eye(i + 1, dtype=torch.float32).flatten(), torch.eye(o, dtype=torch.float32).flatten()]
    return torch.cat(parts)


Mix = tuple[Tensor, Tensor]


def unflatten_mix(config: INRConfig, mix: Tensor | None) -> list[Mix | None]:
    """flat [K] -> [(L_l [in+1, in+1], R_l [out, out]) per layer] (views); None -> [None] * layers."""
    if mix is None:
        return [None] * len(config.layer_shapes)
    if mix.shape != (config.mix_size,):
        raise ValueError(f"mixing matrices must be [{config.mix_size}], got {tuple(mix.shape)}")
    out: list[Mix | None] = []
    pos = 0
    for i, o in config.layer_shapes:
        L = mix[pos:pos + (i + 1) ** 2].view(i + 1, i + 1)
        pos += (i + 1) ** 2
        out.append((L, mix[pos:pos + o * o].view(o, o)))
        pos += o * o
    return out


def _mixes(config: INRConfig, mix: Tensor) -> list[Mix]:
    """`unflatten_mix` of actual matrices: every layer's (L, R)."""
    return [m for m in unflatten_mix(config, mix) if m is not None]


def _augmented(config: INRConfig, flat: Tensor) -> list[Tensor]:
    """flat [P, D] -> [Theta_l = [W_l; b_l] as [P, in+1, out] per layer]; views, no copies."""
    P = flat.shape[0]
    return [flat[:, w0:end].view(P, i + 1, o)
            for (w0, _, end), (i, o) in zip(config.layer_offsets(), config.layer_shapes)]


def _mixed_input(x: Tensor, L: Tensor) -> Tensor:
    """[x, 1] @ L: the layer input in the basis of the coded parameters, [..., in+1]."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1) @ L


def init_bounds(config: INRConfig) -> Tensor:
    """Per-parameter half-width a of the SIREN uniform init U(-a, a), flat layout, float32 [D].

    First layer a = 1/in, later layers a = sqrt(6/in)/w0 (Sitzmann et al. 2020). Biases use the
    same bound as their layer's weights (keeps the init and the prior per-layer homogeneous).
    """
    parts = []
    for l, (i, o) in enumerate(config.layer_shapes):
        a = 1.0 / i if l == 0 else math.sqrt(6.0 / i) / config.w0
        parts.append(torch.full((i * o + o,), a, dtype=torch.float32))
    return torch.cat(parts)


def siren_init(config: INRConfig, num_patches: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw [P, D] SIREN-initialised means (CPU, float32; deterministic given the generator)."""
    a = init_bounds(config)
    u = torch.rand((num_patches, config.num_params), generator=generator, dtype=torch.float32)
    return (2.0 * u - 1.0) * a


def kl_per_param(mu: Tensor, sigma: Tensor, prior_mean: Tensor, prior_std: Tensor) -> Tensor:
    """Closed-form KL(N(mu, sigma^2) || N(m, s^2)) in nats, elementwise (broadcasting).

    Requires sigma > 0; use `BayesianINR.kl` for models with fixed (sigma = 0) entries.
    """
    var_ratio = (sigma / prior_std) ** 2
    diff = (mu - prior_mean) / prior_std
    return 0.5 * (var_ratio + diff * diff - 1.0 - torch.log(var_ratio))


def network_forward(config: INRConfig, coords: Tensor, freqs: Tensor, flat: Tensor,
                    mix: Tensor | None = None) -> Tensor:
    """Deterministic network at coords [N, in] with flat parameters [P, D]."""
    return mlp_forward(config, fourier_features(coords, freqs), flat, mix)


def mlp_forward(config: INRConfig, feats: Tensor, weights: Tensor, mix: Tensor | None = None) -> Tensor:
    """Deterministic network on inputs [N, F] (shared) or [P, N, F] with flat parameters [P, D]
    and optional flat mixing matrices [K] (see the module docstring)."""
    x = feats
    if mix is None:
        plain = unflatten(config, weights)
        for l, (W, b) in enumerate(plain):
            x = torch.matmul(x, W) + b.unsqueeze(1)  # [P, N, out]; matmul broadcasts shared x over P
            if l < len(plain) - 1:
                x = torch.sin(config.w0 * x)
        return x
    thetas = _augmented(config, weights)
    for l, (theta, (L, R)) in enumerate(zip(thetas, _mixes(config, mix))):
        x = torch.matmul(torch.matmul(_mixed_input(x, L), theta), R)  # theta = [W; b]
        if l < len(thetas) - 1:
            x = torch.sin(config.w0 * x)
    return x


def noise_pool(largest: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
    """Standard normals, float32 [max(4 * largest, 2^20)], from which `pool_window` takes the
    noise of a fitting step.

    Why: with fresh normals for every activation of every step, an eager step of a Kodak image
    took 12 % longer on one CPU thread (327 against 291 ms; benches/profile_fit.py). A window
    at a uniformly random offset is still a vector of independent standard normals, so each
    step's gradient estimate stays unbiased; steps reuse pool entries at shifted positions, on
    other (randomly chosen) points, which leaves them practically uncorrelated.
    """
    size = max(4 * largest, 1 << 20)
    return torch.randn(size, generator=generator, dtype=torch.float32, device=device)


def pool_window(pool: Tensor, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """A view of ``math.prod(shape)`` consecutive entries of ``pool`` at a random offset."""
    count = math.prod(shape)
    if count > pool.numel():
        raise ValueError(f"a noise pool of {pool.numel()} cannot supply {count} normals")
    offset = int(torch.randint(0, pool.numel() - count + 1, (1,), generator=generator, device=pool.device))
    return pool[offset:offset + count].view(shape)


def effective_layers(config: INRConfig, weights: Tensor, mix: Tensor | None,
                     scale_hidden: bool = False) -> list[tuple[Tensor, Tensor]]:
    """Per-layer effective weights [P, in, out] and biases [P, 1, out] of flat parameters
    [P, D]: ``L Theta R`` split into its rows (see the module docstring), or Theta itself
    without mixing. With ``scale_hidden`` the hidden layers are multiplied by ``w0``, so that
    ``sin(x @ W + b)`` is the layer: one elementwise pass fewer per layer (fitting only; the
    decoder's summation order is specified separately in docs/format.md section 7)."""
    return _folded(config, weights, mix, scale_hidden, squared=False)


def effective_variances(config: INRConfig, variances: Tensor, mix: Tensor | None,
                        scale_hidden: bool = False) -> list[tuple[Tensor, Tensor]]:
    """Per-layer variances of the effective weights [P, in, out] and biases [P, 1, out] when the
    coded parameters have independent variances [P, D]: ``(L o L) Var(Theta) (R o R)`` (o: the
    elementwise product), the variance of each entry of ``L Theta R``; their covariances are
    left out. ``scale_hidden``: times ``w0^2`` for hidden layers, matching `effective_layers`."""
    return _folded(config, variances, mix, scale_hidden, squared=True)


def _folded(config: INRConfig, flat: Tensor, mix: Tensor | None, scale_hidden: bool,
            squared: bool) -> list[tuple[Tensor, Tensor]]:
    """``L Theta R`` per layer (with ``squared``: ``(L o L) Theta (R o R)``), split into weight
    rows and bias row; hidden layers times ``w0`` (``w0^2``) with ``scale_hidden``."""
    thetas = _augmented(config, flat)
    mixes: list[Mix | None] = list(_mixes(config, mix)) if mix is not None else [None] * len(thetas)
    scale = config.w0 * config.w0 if squared else config.w0
    out = []
    for l, (theta, m) in enumerate(zip(thetas, mixes)):
        eff = theta
        if m is not None:
            L, R = (m[0] * m[0], m[1] * m[1]) if squared else m
            eff = torch.matmul(torch.matmul(L, theta), R)
        if scale_hidden and l < len(thetas) - 1:
            eff = eff * scale
        out.append((eff[:, :-1, :], eff[:, -1:, :]))
    return out


def batched_linear(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """``x @ W + b`` for x [P, n, in], W [P, in, out], b [P, 1, out] -> [P, n, out], float32.

    Under `torch.compile` the product is written once and the bias addition fuses into the
    elementwise kernel that reads it next; ``torch.baddbmm``, used in eager mode, first copies
    the broadcast bias into the [P, n, out] output and then accumulates onto it. A compiled
    fitting step with folded noise on a Kodak image took 85 ms instead of 101 ms on one thread
    with the fused addition (`benches/profile_fit.py`); two Kodak images encoded to the same
    bytes either way. Eager steps showed no difference and keep baddbmm.
    """
    if torch.compiler.is_compiling():
        return torch.matmul(x, W) + b
    return torch.baddbmm(b, x, W)


def folded_forward(config: INRConfig, feats: Tensor, weights: Tensor, mix: Tensor | None) -> Tensor:
    """The network with flat parameters [P, D] on features [n, F] or [P, n, F] -> [P, n, out],
    computed with `effective_layers` (mixing and w0 folded into each patch's weights)."""
    layers = effective_layers(config, weights, mix, scale_hidden=True)
    x = feats.expand(weights.shape[0], *feats.shape[-2:]) if feats.ndim == 2 else feats
    for l, (W, b) in enumerate(layers):
        x = batched_linear(x, W, b)
        if l < len(layers) - 1:
            x = torch.sin(x)
    return x


class BayesianINR(torch.nn.Module):
    """P independent Bayesian INRs with diagonal Gaussian posteriors N(mu, softplus(rho)^2).

    Fixed entries (already transmitted): `fixed_mask` [P, D] bool with `fixed_values` [P, D]. For
    them the effective mean is the fixed value and the effective sigma is exactly 0; both are
    selected with torch.where so shapes never change (graph-capturable) and no gradient reaches
    the underlying mu / rho entries.

    ``mix``: flat mixing matrices [K] shared by all patches (see the module docstring), a frozen
    buffer, or a trainable parameter with ``learn_mix`` (prior learning); None = no mixing.
    """

    freqs: Tensor
    fixed_mask: Tensor
    fixed_values: Tensor
    mix: Tensor | None

    def __init__(
        self,
        config: INRConfig,
        num_patches: int,
        *,
        rho_init: float = -10.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        mix: Tensor | None = None,
        learn_mix: bool = False,
        mean: Tensor | None = None,
        std: Tensor | None = None,
    ) -> None:
        """``mean`` and ``std`` [D] (shared by every patch) start the posteriors; without them the
        means are a SIREN draw from ``generator`` and the stds softplus(``rho_init``)."""
        super().__init__()
        if num_patches < 1:
            raise ValueError("num_patches must be >= 1")
        self.config = config
        self.num_patches = num_patches
        if mean is None:
            mu = siren_init(config, num_patches, generator)  # CPU draw: same init on every device
        else:
            mu = torch.as_tensor(mean, dtype=torch.float32).expand(num_patches, config.num_params).clone()
        self.mu = torch.nn.Parameter(mu.to(device))
        if std is None:
            rho = torch.full_like(self.mu, float(rho_init))
        else:
            std = torch.as_tensor(std, dtype=torch.float32).to(device)
            rho = torch.log(torch.expm1(std)).expand_as(self.mu).clone()  # softplus^-1
        self.rho = torch.nn.Parameter(rho)
        D = config.num_params
        self.register_buffer("freqs", torch.from_numpy(config.frequencies()).to(torch.float32).to(device))
        self.register_buffer("fixed_mask", torch.zeros((num_patches, D), dtype=torch.bool, device=device))
        self.register_buffer("fixed_values", torch.zeros((num_patches, D), dtype=torch.float32, device=device))
        if learn_mix and mix is None:
            mix = identity_mix(config)
        if mix is not None:
            mix = torch.as_tensor(mix, dtype=torch.float32).to(device).clone()
            unflatten_mix(config, mix)  # validates the length
        if learn_mix:
            assert mix is not None
            self.mix = torch.nn.Parameter(mix)
        else:
            self.register_buffer("mix", mix)

    # -- fixed (transmitted) parameters ------------------------------------------------------------
    @torch.no_grad()
    def set_fixed(self, mask: Tensor, values: Tensor) -> None:
        """Replace the fixed set (in place, so captured graphs keep seeing the same buffers).

        The raw mu / rho entries under the mask are left as they are and may keep drifting under
        Adam momentum; they are never read while fixed, so this is harmless.
        """
        mask = torch.as_tensor(mask, device=self.mu.device).to(torch.bool)
        values = torch.as_tensor(values, device=self.mu.device, dtype=torch.float32)
        if mask.shape != self.mu.shape or values.shape != self.mu.shape:
            raise ValueError(f"fixed mask/values must be {tuple(self.mu.shape)}")
        self.fixed_mask.copy_(mask)
        self.fixed_values.copy_(torch.where(mask, values, torch.zeros_like(values)))

    @torch.no_grad()
    def clear_fixed(self) -> None:
        self.fixed_mask.zero_()
        self.fixed_values.zero_()

    # -- posterior ---------------------------------------------------------------------------------
    def posterior(self) -> tuple[Tensor, Tensor]:
        """Effective (mean, sigma) [P, D], honouring fixed entries."""
        mean = torch.where(self.fixed_mask, self.fixed_values, self.mu)
        sigma = torch.where(self.fixed_mask, torch.zeros_like(self.rho), torch.nn.functional.softplus(self.rho))
        return mean, sigma

    def kl(self, prior_mean: Tensor, prior_std: Tensor) -> Tensor:
        """Per-parameter KL [P, D] in nats; exactly 0 on fixed entries (their cost is already paid).

        Fixed entries are swapped for the prior itself before the log, so no inf/nan is ever formed
        (a masked inf would still poison gradients as 0 * inf).
        """
        mean, sigma = self.posterior()
        m = torch.broadcast_to(prior_mean, mean.shape)
        s = torch.broadcast_to(prior_std, sigma.shape)
        return kl_per_param(
            torch.where(self.fixed_mask, m, mean), torch.where(self.fixed_mask, s, sigma), m, s
        )

    def forward(self, coords: Tensor, generator: torch.Generator | None = None,
                noise: Noise = "local") -> Tensor:
        """Stochastic forward: coords [N, in] or [P, N, in] -> [P, N, out] (see `forward_features`)."""
        x = fourier_features(coords, self.freqs)
        return self.forward_features(x, self.draw_noise(x.shape[-2], generator, noise), noise)

    def draw_noise(self, num_points: int, generator: torch.Generator | None = None, noise: Noise = "local",
                   samples: int = 1, pool: Tensor | None = None) -> list[Tensor]:
        """The standard normals of one stochastic forward pass on ``num_points`` points, float32:
        ``"local"``, ``"marginal"`` and ``"folded"``: one [P, num_points, out_l] tensor per layer, drawn layer by
        layer; ``"weights"``: one [P, samples, D] tensor (``samples`` weight draws per patch).
        Drawn apart from the arithmetic so that the forward pass is a pure function of its inputs
        (which `torch.compile` can fuse).

        ``pool``: a 1-D tensor of standard normals (`noise_pool`); each tensor is then a window
        of it at an offset drawn from ``generator``, instead of fresh normals.
        """
        P, D = self.mu.shape
        def normals(*shape: int) -> Tensor:
            if pool is not None:
                return pool_window(pool, shape, generator)
            return torch.randn(shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        if noise == "weights":
            return [normals(P, samples, D)]
        if noise not in ("local", "marginal", "folded"):
            raise ValueError(f"noise must be 'local', 'marginal', 'folded' or 'weights', not {noise!r}")
        return [normals(P, num_points, o) for _, o in self.config.layer_shapes]

    def forward_features(self, x: Tensor, eps: list[Tensor], noise: Noise = "local") -> Tensor:
        """Stochastic forward on Fourier features [N, F] or [P, N, F] -> [P, N, out], with the
        normals ``eps`` of `draw_noise`.

        ``noise="local"``: local reparameterisation (Kingma, Salimans and Welling 2015); each
        pre-activation is drawn from its exact Gaussian marginal given the layer input, with
        fresh noise per (patch, point, unit): the lowest-variance gradients, at two matmuls per
        layer and one normal per activation.
        ``noise="folded"``: local reparameterisation on the effective weights ``L Theta R``
        with the variance of each (`effective_variances`), as if they were independent: exact
        without mixing matrices, an approximation with them (the mixing matrices are close to
        the identity), at half the matmuls of "local".
        ``noise="marginal"``: with mixing matrices, each unit of a layer's output from its exact
        marginal given the layer input, independently of the point's other units
        (`_forward_mixed`): between "local" (also exact jointly) and "folded" (also
        approximates the marginals); the same as "local" without mixing matrices.
        ``noise="weights"``: S weight samples per patch (eps [P, S, D]), sample s used on the
        s-th of S equal consecutive groups of the points (N must be a multiple of S), then the
        deterministic network: one matmul per layer and one normal per weight and sample;
        noisier gradients for a fraction of the cost (benches/profile_fit.py).
        """
        mean, sigma = self.posterior()
        if noise == "weights":
            P, S, D = eps[0].shape
            w = (mean.unsqueeze(1) + sigma.unsqueeze(1) * eps[0]).reshape(P * S, D)
            n = x.shape[-2]
            if n % S:
                raise ValueError(f"{n} points do not split into {S} groups")
            grouped = x.reshape(-1, S, n // S, x.shape[-1]).expand(P, S, n // S, x.shape[-1])
            out = folded_forward(self.config, grouped.reshape(P * S, n // S, x.shape[-1]), w, self.mix)
            return out.reshape(P, n, out.shape[-1])
        if noise == "folded":
            return self._forward_folded(x, mean, sigma, eps)
        if self.mix is not None:
            return self._forward_mixed(x, mean, sigma, eps, marginal=noise == "marginal")
        mean_layers = unflatten(self.config, mean)
        var_layers = unflatten(self.config, sigma * sigma)
        last = len(mean_layers) - 1
        for l, ((Wm, bm), (Wv, bv)) in enumerate(zip(mean_layers, var_layers)):
            m = torch.matmul(x, Wm) + bm.unsqueeze(1)
            v = torch.matmul(x * x, Wv) + bv.unsqueeze(1)
            x = m + torch.sqrt(v.clamp_min(_TINY_VAR)) * eps[l]
            if l < last:
                x = torch.sin(self.config.w0 * x)
        return x

    def _forward_folded(self, x: Tensor, mean: Tensor, sigma: Tensor, eps: list[Tensor]) -> Tensor:
        """`forward_features` with noise "folded": local reparameterisation in the basis of the
        effective weights (`effective_layers`, `effective_variances`)."""
        means = effective_layers(self.config, mean, self.mix, scale_hidden=True)
        variances = effective_variances(self.config, sigma * sigma, self.mix, scale_hidden=True)
        P = mean.shape[0]
        x = x.expand(P, *x.shape[-2:]) if x.ndim == 2 else x
        last = len(means) - 1
        for l, ((W, b), (V, c)) in enumerate(zip(means, variances)):
            m = batched_linear(x, W, b)
            v = batched_linear(x * x, V, c)
            x = m + torch.sqrt(v.clamp_min(_TINY_VAR)) * eps[l]
            if l < last:
                x = torch.sin(x)
        return x

    def _forward_mixed(self, x: Tensor, mean: Tensor, sigma: Tensor, eps: list[Tensor],
                       marginal: bool = False) -> Tensor:
        """`forward_features` with mixing matrices. L and R are deterministic, so drawing
        u Theta (u = [x, 1] L) by local reparameterisation and then multiplying by R keeps every
        draw exact. With ``marginal`` (noise "marginal"): unit j of the output u Theta R is
        Gaussian given u, with mean u (Theta_mean R)_j and variance (u o u) (Var(Theta) (R o R))_j,
        as the columns of u Theta are independent; each unit is drawn from that marginal alone,
        with R folded into each patch's parameters once per step instead of multiplying every
        point."""
        assert self.mix is not None
        mixes = _mixes(self.config, self.mix)
        mean_layers = _augmented(self.config, mean)
        var_layers = _augmented(self.config, sigma * sigma)
        last = len(mean_layers) - 1
        for l, (Tm, Tv, (L, R)) in enumerate(zip(mean_layers, var_layers, mixes)):
            u = _mixed_input(x, L)
            if marginal:
                Tm, Tv = torch.matmul(Tm, R), torch.matmul(Tv, R * R)
            x = torch.matmul(u, Tm) + torch.sqrt(torch.matmul(u * u, Tv).clamp_min(_TINY_VAR)) * eps[l]
            if not marginal:
                x = torch.matmul(x, R)
            if l < last:
                x = torch.sin(self.config.w0 * x)
        return x

    def forward_weights(self, coords: Tensor, weights: Tensor) -> Tensor:
        """Deterministic network with given flat weights [P, D] (decoder / final evaluation)."""
        return network_forward(self.config, coords, self.freqs, weights, self.mix)

    def forward_mean(self, coords: Tensor) -> Tensor:
        """Posterior-mean network (fixed entries at their fixed values)."""
        return self.forward_weights(coords, self.posterior()[0])
