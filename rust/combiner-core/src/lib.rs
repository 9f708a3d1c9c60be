//! `combiner-core`: the platform-independent heart of the combiner codec.
//!
//! * [`rng`]: seeded, seekable ChaCha20 word streams (our seed -> key/stream/position mapping).
//! * [`normal`]: a portable inverse normal CDF (AS241) built from IEEE-exact operations and the
//!   pinned `libm` crate.
//! * [`sampler`]: candidate k of block b, reproducible bit for bit on every platform.
//! * [`kernels`]: batch (vectorisable) forms of the above, bit-identical on every CPU.
//! * [`search`]: the A* coding (truncated Poisson functional representation) search.
//! * [`shuffle`]: the seeded permutation that spreads blocks across patches.
//! * [`bits`] and [`container`]: the bitstream format of `docs/format.md`.
//!
//! No Python here: the `combiner-py` crate binds this to `combiner._core`.

pub mod bits;
pub mod container;
pub mod error;
pub mod kernels;
pub mod normal;
pub mod rng;
pub mod sampler;
pub mod search;
pub mod shuffle;

pub use error::{FormatError, InputError};
