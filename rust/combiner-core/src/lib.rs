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
//! * [`prior`]: the prior file (safetensors) read as hostile input, and its content hash.
//! * [`layout`]: which weights form each block, and the weights a bitstream decodes to.
//! * [`sine`] and [`network`]: the reconstruction's portable sine and the network.
//! * [`decode`]: bitstream + prior -> pixels or samples, the same bits on every machine.
//!
//! Dependencies run one way: `decode` -> `layout`, `network`, `prior`, `container` ->
//! `sampler`, `shuffle`, `sine` -> `kernels`, `rng`, `normal`. No Python here: the
//! `combiner-py` crate binds this to `combiner._core`, and `combiner-decode` is a command-line
//! decoder built on it alone.

pub mod bits;
pub mod container;
pub mod decode;
pub mod error;
pub mod kernels;
pub mod kernels32;
pub mod layout;
pub mod network;
pub mod normal;
pub mod normal32;
pub mod philox;
pub mod prior;
pub mod rng;
pub mod sampler;
pub mod search;
pub mod search32;
pub mod shuffle;
pub mod simd;
pub mod sine;

pub use error::{FormatError, InputError};
