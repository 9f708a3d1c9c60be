"""combiner: compression with Bayesian implicit neural representations (COMBINER).

A signal (image or audio clip) is compressed by fitting a small variational Bayesian MLP to it
and transmitting one sample of its weights with relative entropy coding. A fitted network is per
signal; a prior is learned once and reused for every signal. See README.md.

Importing combiner and decoding need no PyTorch; encoding and learning priors import it.
"""

from combiner.api import decode, encode, learn_prior
from combiner.errors import FormatError, PriorFormatError, PriorMismatchError
from combiner.options import EncodeOptions
from combiner.prior import Prior, PriorKind

__version__ = "0.2.0"

__all__ = [
    "EncodeOptions",
    "FormatError",
    "Prior",
    "PriorFormatError",
    "PriorKind",
    "PriorMismatchError",
    "decode",
    "encode",
    "learn_prior",
    "__version__",
]
