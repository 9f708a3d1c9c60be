"""Type stubs of the Rust extension ``combiner._core`` (see rust/combiner-py)."""

from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION: int
MAX_KAPPA: int
MAX_BLOCK_DIM: int
MAX_SIGNAL_WEIGHTS: int

class FormatError(ValueError): ...
class TruncatedError(FormatError): ...
class BadMagicError(FormatError): ...
class UnsupportedVersionError(FormatError): ...
class ChecksumError(FormatError): ...
class InvalidFieldError(FormatError): ...
class TrailingDataError(FormatError): ...
class PriorFormatError(ValueError): ...
class PriorMismatchError(ValueError): ...

def encode_block(
    mu_q: npt.NDArray[np.float32],
    sigma_q: npt.NDArray[np.float32],
    mu_p: npt.NDArray[np.float32],
    sigma_p: npt.NDArray[np.float32],
    *,
    seed: int,
    block_id: int,
    kappa: int,
    early_stop: bool = True,
    threads: int | None = None,
    version: int = 3,
) -> tuple[int, npt.NDArray[np.float32], int]: ...
def encode_blocks(
    mu_q: npt.NDArray[np.float32],
    sigma_q: npt.NDArray[np.float32],
    mu_p: npt.NDArray[np.float32],
    sigma_p: npt.NDArray[np.float32],
    sizes: npt.NDArray[np.uint64],
    block_ids: npt.NDArray[np.uint64],
    *,
    seed: int,
    kappa: int,
    early_stop: bool = True,
    threads: int | None = None,
    version: int = 3,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float32], int]: ...
def decode_block(
    mu_p: npt.NDArray[np.float32],
    sigma_p: npt.NDArray[np.float32],
    *,
    seed: int,
    block_id: int,
    index: int,
    kappa: int,
    version: int = 3,
) -> npt.NDArray[np.float32]: ...
def decode_blocks(
    mu_p: npt.NDArray[np.float32],
    sigma_p: npt.NDArray[np.float32],
    sizes: npt.NDArray[np.uint64],
    block_ids: npt.NDArray[np.uint64],
    indices: npt.NDArray[np.uint32],
    *,
    seed: int,
    kappa: int,
    version: int = 3,
) -> npt.NDArray[np.float32]: ...
def candidate_normals(
    *, seed: int, block_id: int, dim: int, index: int, version: int = 3
) -> npt.NDArray[np.float64] | npt.NDArray[np.float32]:
    """Candidate ``index``'s standard normals: float64 for versions 1 and 2, float32 for 3."""
def ordered_gumbels(*, seed: int, block_id: int, n: int) -> npt.NDArray[np.float64]: ...
def chacha20_keystream(key: bytes, *, stream: int, word_pos: int, nbytes: int) -> bytes: ...
def candidate_key(*, seed: int) -> bytes: ...
def permutation(*, seed: int, n: int) -> npt.NDArray[np.uint32]: ...
def pack(
    *,
    modality: str,
    kappa: int,
    height: int,
    width: int,
    channels: int,
    sample_rate: int,
    seed: int,
    prior_hash: bytes,
    prior_id: str,
    indices: npt.NDArray[np.uint32],
    spread_blocks: bool = False,
    version: int = 3,
) -> bytes: ...
def unpack(data: bytes) -> tuple[dict[str, Any], npt.NDArray[np.uint32]]: ...
def prior_content_hash(prior: bytes) -> bytes:
    """The 32-byte content hash of a prior file (docs/format.md section 5); PriorFormatError if invalid."""
def decode(
    data: bytes, prior: bytes, *, threads: int | None = None, simd: bool = True
) -> tuple[dict[str, Any], npt.NDArray[np.uint8] | npt.NDArray[np.int16]]:
    """Decode a bitstream with a prior file (docs/format.md sections 3-7): the header fields and
    uint8 [H, W, C] pixels or int16 [T] samples, the same on every machine and thread count.
    Raises FormatError subclasses, PriorFormatError or PriorMismatchError."""
