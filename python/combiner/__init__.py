"""combiner: compression with Bayesian implicit neural representations (COMBINER).

A signal (image or audio clip) is compressed by fitting a small variational Bayesian MLP to it
and transmitting one sample of its weights with relative entropy coding. See README.md.
"""

from combiner.errors import FormatError, PriorMismatchError

__version__ = "0.1.0"

__all__ = ["FormatError", "PriorMismatchError", "__version__"]
