"""The shipped prior families, each defined once: what it is for, its network and patch, how its
priors are learned (``training/train_priors.py``), its quality levels, and the encoder settings
written into its priors.

- ``thumbnail``: small images (at most ``THUMBNAIL_MAX_PIXELS``, e.g. 32 x 32), one 32 x 32 patch;
- ``photo``: larger images of any size, cut into 64 x 64 patches that share the prior;
- ``speech``: 16 kHz audio, cut into 0.05 s chunks (800 samples).

A family's priors are ``NAME-q0`` (lowest rate) to ``NAME-qK``, one per entry of its recipe's
``bits_per_patch``. The encoder settings differ by family: a photo has hundreds of patches per
image, so it gets fewer fitting steps on a fraction of the pixels, a higher learning rate, and
blocks spread across patches so that busy patches can take more bits than flat ones; speech
spreads its blocks too, so that silent chunks give their bits to speech. The measurements behind
these choices are in ``results/experiments/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from combiner.config import INRConfig
from combiner.options import EncoderSettings, Noise

if TYPE_CHECKING:
    from combiner.media import Signal

__all__ = ["CONFIGS", "FAMILIES", "Family", "Modality", "Refinement", "TrainingRecipe", "for_signal", "network"]

Modality = Literal["image", "audio"]

# Network presets: the INRConfig fields besides the input and output sizes, which follow from
# the modality. "small" is RECOMBINER's 4-layer width-32 SIREN with a few Fourier features: the
# size that fits a 32 x 32 thumbnail or patch.
CONFIGS: dict[str, dict] = {
    "small": dict(num_freqs=8, max_freq=16.0, width=32, depth=3),
    # "small" for 64 x 64 patches: the same network, frequencies up to the patch's Nyquist rate.
    "small64": dict(num_freqs=8, max_freq=32.0, width=32, depth=3),
    "audio": dict(num_freqs=32, max_freq=256.0, width=32, depth=3),
    # For 800-sample (0.05 s) chunks: RECOMBINER's audio network (16 frequencies), the highest
    # at the chunk's Nyquist rate.
    "audio800": dict(num_freqs=16, max_freq=400.0, width=32, depth=3),
}


def network(preset: str, modality: Modality) -> INRConfig:
    """The network of preset ``preset`` (a key of ``CONFIGS``) for ``modality``."""
    if preset not in CONFIGS:
        raise ValueError(f"unknown config {preset!r}; choose from {sorted(CONFIGS)}")
    in_dim, out_dim = (2, 3) if modality == "image" else (1, 1)
    return INRConfig(in_dim=in_dim, out_dim=out_dim, **CONFIGS[preset])


@dataclass(frozen=True)
class Refinement:
    """A second learning stage: each level's prior is refined on the same training patches, its
    posteriors started and fitted as the encoder does (``prior_learning.learn_prior``'s
    ``start``), one Adam per minibatch through all the rounds."""

    iterations: int  # rounds of ``steps`` fitting steps, each followed by the M-step
    steps: int
    lr: float  # the posteriors' learning rate: the encoder's
    noise: Noise  # how fitting draws the network: the encoder's


@dataclass(frozen=True)
class TrainingRecipe:
    """How a family's priors are learned: the arguments of ``api.learn_prior_from_folder``."""

    folders: tuple[str, ...]  # the training files' folders, under the data folder (``../shared/data``)
    max_files: int | None  # the first files (each folder's by name, the folders in order); None: all
    per_file: int  # random crops (patches) per training file
    iterations: int  # learning rounds
    steps: int  # fitting steps per training posterior in each round after the first
    first_steps: int  # fitting steps of the first round
    bits_per_patch: tuple[float, ...]  # payload bits per patch of each quality level
    beta: float = 1e-5  # the starting beta (adapted to each level's rate when rate_targeted)
    kappa: int = 16
    seed: int = 0
    lr: float = 1e-3
    pixel_fraction: float = 0.25
    rate_targeted: bool = True  # one prior per level, learned at that level's rate
    learn_mix: bool = True  # learn the mixing matrices of the linear reparameterisation
    flips: bool = False  # mirror each image crop left-right with probability 1/2
    refine: Refinement | None = None  # a refinement stage after learning (rate-targeted recipes)


@dataclass(frozen=True)
class Family:
    name: str
    modality: Modality
    config: str  # the network preset (a key of CONFIGS)
    patch: tuple[int, ...]  # (height, width) for images, (samples,) for audio
    training: TrainingRecipe
    encoder: EncoderSettings  # written into every prior of the family
    sample_rate: int | None = None  # audio: the rate the priors are learned for

    @property
    def levels(self) -> tuple[str, ...]:
        """Names of the family's priors, lowest rate first."""
        return tuple(f"{self.name}-q{q}" for q in range(len(self.training.bits_per_patch)))


THUMBNAIL_MAX_PIXELS = 64 * 64

FAMILIES: dict[str, Family] = {f.name: f for f in (
    # CIFAR-10 train images 0-999, each one whole 32 x 32 image (about 10 minutes per level on
    # one CPU core).
    Family("thumbnail", "image", "small", (32, 32),
           TrainingRecipe(folders=("cifar10/train",), max_files=1000, per_file=1, iterations=10,
                          steps=50, first_steps=150, bits_per_patch=(600.0, 1000.0, 1800.0, 2800.0)),
           EncoderSettings(fit_steps=1500, refine_steps=10, lr=1e-3)),
    # 10 random 64 x 64 crops from each of the 30 training photos (300 patches), RECOMBINER's
    # patch size; twice the steps of the other families (about 20 minutes per level), then 12
    # rounds refined at the encoder's learning rate and noise (about 15 minutes per level; +0.1
    # to +0.5 dB on Kodak crops: results/experiments/README.md, "Priors refined at the
    # encoder's settings").
    Family("photo", "image", "small64", (64, 64),
           TrainingRecipe(folders=("train_photos",), max_files=None, per_file=10, iterations=10,
                          steps=100, first_steps=300,
                          bits_per_patch=tuple(4096 * b for b in (0.15, 0.3, 0.6, 1.0)),
                          refine=Refinement(iterations=12, steps=100, lr=2e-3, noise="folded")),
           # Fitting: local reparameterisation on the effective weights from a noise pool, at
           # about 0.7x the time per step of the exact one. Refinement: the exact one, and each
           # block's KL aimed at kappa bits instead of kappa - 0.5: together +0.09 dB on the
           # crops (results/experiments/README.md, "The encoder's speed"). The posteriors start
           # at 0.3 of the prior std instead of 0.5: +0.12 dB on the q1 crops, +0.64 dB on a q3 crop
           # (the same section, "The starting posterior"). 2,000 fitting steps instead of 1,200:
           # +0.11 dB on nine q1 crops for about 1.5 times the encode time ("A longer fit for
           # `photo`"). At most 1,700 refinement steps in all: q0-q2 (40-163 rounds) keep 10 per
           # round, q3 (275 rounds) gets 6, which brings a Kodak image at q3 from 310 s to within
           # the 5-minute budget for -0.06 dB on three crops ("The refinement of q3 within the
           # time budget").
           EncoderSettings(fit_steps=2000, refine_steps=10, max_refine_steps=1700, lr=2e-3,
                           pixel_fraction=0.25, spread_blocks=True, noise="folded", refine_noise="local",
                           pooled_noise=True, target_bits=16.0, init_std_ratio=0.3)),
    # 40 random 0.05 s chunks (800 samples, RECOMBINER's audio patch) from each of the 40
    # train-clean-100 clips (1,600 chunks); 16 rounds from a starting beta suited to waveforms
    # (at 1e-5 the posteriors carry under 100 bits per chunk); about 19 minutes per level.
    Family("speech", "audio", "audio800", (800,),
           TrainingRecipe(folders=("audio/librispeech_train-clean-100",), max_files=None, per_file=40,
                          iterations=16, steps=50, first_steps=150, beta=3e-7,
                          bits_per_patch=tuple(50 * k for k in (6.0, 12.0, 24.0, 48.0))),
           EncoderSettings(fit_steps=1200, refine_steps=10, lr=1e-3, spread_blocks=True),
           sample_rate=16000),
)}


def for_signal(signal: Signal) -> Family:
    """The family suited to ``signal``: speech for audio, thumbnail for images of at most
    ``THUMBNAIL_MAX_PIXELS`` pixels, photo for larger ones."""
    if signal.modality == "audio":
        return FAMILIES["speech"]
    h, w = signal.values.shape[:2]
    return FAMILIES["thumbnail" if h * w <= THUMBNAIL_MAX_PIXELS else "photo"]
