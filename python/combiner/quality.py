"""Default priors by signal kind and quality level: what ``encode(x, quality=Q)`` uses.

Three families ship inside the package, each a set of priors ``FAMILY-q0`` (lowest rate) to
``FAMILY-qK`` learned once and partitioned for K + 1 rates (see ``training/train_priors.py``):

- ``thumbnail``: small images (at most ``THUMBNAIL_MAX_PIXELS``, e.g. 32 x 32), one 32 x 32 patch;
- ``photo``: larger images of any size, cut into 64 x 64 patches that share the prior;
- ``speech``: 16 kHz audio, cut into 0.05 s chunks (800 samples).

Each family also carries the encoder settings it was measured with (``ENCODE_DEFAULTS``): a photo
has hundreds of patches per image, so it gets fewer fitting steps on a fraction of the pixels, and
its blocks are spread across patches so that busy patches can take more bits than flat ones.
"""

from __future__ import annotations

import re

from combiner import registry
from combiner.media import Signal
from combiner.prior import Prior

DEFAULT_QUALITY = 1
THUMBNAIL_MAX_PIXELS = 64 * 64

ENCODE_DEFAULTS: dict[str, dict] = {
    "thumbnail": dict(fit_steps=1500, refine_steps=10, lr=1e-3),
    # photo: on a 256 x 256 crop of kodim03 with the first (32 x 32 patch, now retired) photo-q1
    # prior, 2,597 bytes each: 300 fitting steps + 3 refinement steps per round 21.7 dB, 1,200 + 3
    # 24.0 dB, 2,400 + 3 24.1 dB, 1,200 + 10 24.4 dB. The search cost (2^16 candidates per
    # weight) does not depend on these; with the 64 x 64 patch priors the search is a quarter of
    # what it was, and fitting and refinement take most of the encode time. With the session-5
    # 64 x 64 photo-q1, 30 refinement steps instead of 10 gave +0.24 dB on three 256 x 256 crops
    # (kodim03/01/20: 28.94/23.56/25.94 against 28.54/23.48/25.71 dB) for 1.7 times the time:
    # not taken (scaled by that ratio, not measured: a Kodak image would take about 20 minutes on
    # one core instead of 12).
    # Session 11, same three crops (kodim03/01/20) at photo-q1, 2,629 bytes each: shipped settings
    # 26.73 dB; lr 2e-3 26.94 dB (5e-4: 26.21 dB; 4e-3 on kodim03 below 2e-3); blocks spread across
    # patches (combiner.blocks) 27.47 dB; both 27.74 dB. Both taken; q0 and q3 gain as much
    # (results/experiments/README.md, "Spread blocks").
    "photo": dict(fit_steps=1200, refine_steps=10, lr=2e-3, pixel_fraction=0.25, spread_blocks=True),
    # speech: the same trade. 300 + 3 against 1,200 + 10, same file sizes: clip 2414-128291-0008
    # at speech-q1 37.4 -> 39.3 dB, the first 3 s of 1688-142285-0009 at speech-q0 27.9 -> 30.7 dB
    # (session 4, with the first speech priors on 0.1 s chunks).
    # Session 11: blocks spread across chunks (combiner.blocks) let silent chunks give their bits
    # to speech: 1 s of three test-other clips at speech-q0, 838 bytes each (EncodeOptions'
    # defaults), 36.49 -> 42.69 dB.
    "speech": dict(fit_steps=1200, refine_steps=10, lr=1e-3, spread_blocks=True),
}


def family_for(signal: Signal) -> str:
    """The shipped family suited to ``signal``: thumbnail, photo or speech."""
    if signal.modality == "audio":
        return "speech"
    h, w = signal.values.shape[:2]
    return "thumbnail" if h * w <= THUMBNAIL_MAX_PIXELS else "photo"


def levels(family: str) -> list[str]:
    """Names of the family's shipped priors, lowest rate first."""
    pattern = re.compile(re.escape(family) + r"-q(\d+)")
    levels = {int(m.group(1)): n for n in registry.shipped() if (m := pattern.fullmatch(n))}
    return [levels[q] for q in sorted(levels)]


def prior_name_for(signal: Signal, quality: int) -> str:
    """The shipped prior for ``signal`` at ``quality`` (0 = lowest rate)."""
    family = family_for(signal)
    names = levels(family)
    if isinstance(quality, bool) or not isinstance(quality, int):
        raise ValueError(f"quality must be an integer, got {quality!r}")
    if not names:
        raise ValueError(f"no shipped {family} priors are installed")
    if not 0 <= quality < len(names):
        raise ValueError(f"quality {quality} is out of range for {family} signals: "
                         f"choose 0 (lowest rate) to {len(names) - 1} (highest)")
    return names[quality]


def default_prior(signal: Signal, quality: int = DEFAULT_QUALITY) -> tuple[Prior, dict]:
    """The shipped prior for ``signal`` at ``quality`` and the encoder settings that go with it."""
    name = prior_name_for(signal, quality)
    if signal.modality == "audio" and signal.sample_rate != 16000:
        raise ValueError(f"the shipped speech priors are for 16 kHz audio, got {signal.sample_rate} Hz; "
                         "resample the clip or pass a prior learned at its rate")
    return registry.resolve(name), dict(ENCODE_DEFAULTS[family_for(signal)])
