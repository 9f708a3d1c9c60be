//! Typed errors of the core. The Python binding maps each to an exception class.

use thiserror::Error;

/// Invalid arguments to the sampler or the search (caller bugs or hostile input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("kappa must be in 1..={max}, got {got}")]
    Kappa { got: u32, max: u32 },
    #[error("block arrays must all have the same length: {what}")]
    LengthMismatch { what: String },
    #[error("a block must have between 1 and {max} dimensions, got {got}")]
    BlockSize { got: usize, max: usize },
    #[error("{name}[{index}] = {value}: {why}")]
    BadValue {
        name: &'static str,
        index: usize,
        value: String,
        why: &'static str,
    },
    #[error("candidate index {index} does not exist with kappa {kappa} (needs index < 2^kappa)")]
    IndexOutOfRange { index: u64, kappa: u32 },
    #[error("a permutation has at most {max} elements, {got} requested")]
    PermutationLength { got: u64, max: u64 },
}

/// Why a bitstream was refused. Every malformed input maps to one of these, never to a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("truncated bitstream: needed {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("not a combiner bitstream (bad magic {found:02x?})")]
    BadMagic { found: [u8; 3] },
    #[error("unsupported format version {found} (this build reads versions 1 to {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error(
        "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}; the file is corrupted"
    )]
    BadChecksum { stored: u32, computed: u32 },
    #[error("invalid header field {field}: {why}")]
    InvalidField { field: &'static str, why: String },
    #[error("{extra} unexpected bytes after the end of the payload")]
    TrailingData { extra: usize },
}
