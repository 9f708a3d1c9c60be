//! `combiner._core`: thin PyO3 bindings over `combiner-core`. This file only converts types,
//! releases the GIL around the work and maps core errors to Python exceptions; all logic lives
//! in the core crate.

use combiner_core::container::{self, Header, Modality};
use combiner_core::decode::{self as decoder, DecodeError, Samples};
use combiner_core::kernels::Isa;
use combiner_core::prior::Prior;
use combiner_core::sampler::Generator;
use combiner_core::search::{self, Block};
use combiner_core::{FormatError as CoreFormatError, InputError, rng, sampler, shuffle};
use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArray};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

create_exception!(
    _core,
    FormatError,
    PyValueError,
    "A bitstream is malformed or unsupported."
);
create_exception!(
    _core,
    TruncatedError,
    FormatError,
    "The bitstream ends too early."
);
create_exception!(
    _core,
    BadMagicError,
    FormatError,
    "The data is not a combiner bitstream."
);
create_exception!(
    _core,
    UnsupportedVersionError,
    FormatError,
    "Unknown format version."
);
create_exception!(
    _core,
    ChecksumError,
    FormatError,
    "The CRC does not match: corrupted data."
);
create_exception!(
    _core,
    InvalidFieldError,
    FormatError,
    "A header field has a forbidden value."
);
create_exception!(
    _core,
    TrailingDataError,
    FormatError,
    "Bytes follow the end of the bitstream."
);

create_exception!(
    _core,
    PriorFormatError,
    PyValueError,
    "A prior file or object is malformed, corrupted or inconsistent."
);
create_exception!(
    _core,
    PriorMismatchError,
    PyValueError,
    "The prior given to the decoder is not the one the bitstream was encoded with."
);

fn decode_err(e: DecodeError) -> PyErr {
    match e {
        DecodeError::Format(e) => format_err(e),
        DecodeError::Prior(e) => PriorFormatError::new_err(e.to_string()),
        DecodeError::PriorMismatch(why) => PriorMismatchError::new_err(why),
    }
}

/// Indices, samples and the number of candidates scored, of a batch of blocks.
type SearchResult<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<f32>>, u64);

fn format_err(e: CoreFormatError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreFormatError::Truncated { .. } => TruncatedError::new_err(msg),
        CoreFormatError::BadMagic { .. } => BadMagicError::new_err(msg),
        CoreFormatError::UnsupportedVersion { .. } => UnsupportedVersionError::new_err(msg),
        CoreFormatError::BadChecksum { .. } => ChecksumError::new_err(msg),
        CoreFormatError::InvalidField { .. } => InvalidFieldError::new_err(msg),
        CoreFormatError::TrailingData { .. } => TrailingDataError::new_err(msg),
    }
}

fn input_err(e: InputError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The candidate generator of format `version` (1 to 3), or ValueError.
fn generator_of(version: u8) -> PyResult<Generator> {
    Generator::of_version(version).ok_or_else(|| {
        PyValueError::new_err(format!(
            "format version must be 1 to {}, got {version}",
            container::VERSION
        ))
    })
}

/// Run `f` on a dedicated pool of `threads` workers, or on rayon's global pool.
fn on_threads<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    match threads {
        None => Ok(f()),
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .build()
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            Ok(pool.install(f))
        }
    }
}

/// Split concatenated block arrays by `sizes`; errors when the sizes do not add up.
fn split<'a>(v: &'a [f32], sizes: &[u64], name: &str) -> PyResult<Vec<&'a [f32]>> {
    let total: u64 = sizes
        .iter()
        .try_fold(0u64, |a, &s| a.checked_add(s))
        .unwrap_or(u64::MAX);
    if total != v.len() as u64 {
        return Err(PyValueError::new_err(format!(
            "{name} has {} values but the block sizes add up to {total}",
            v.len()
        )));
    }
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0usize;
    for &s in sizes {
        out.push(&v[start..start + s as usize]);
        start += s as usize;
    }
    Ok(out)
}

#[pyfunction]
#[pyo3(signature = (mu_q, sigma_q, mu_p, sigma_p, *, seed, block_id, kappa, early_stop=true, threads=None, version=container::VERSION))]
#[allow(clippy::too_many_arguments)]
fn encode_block<'py>(
    py: Python<'py>,
    mu_q: PyReadonlyArray1<'py, f32>,
    sigma_q: PyReadonlyArray1<'py, f32>,
    mu_p: PyReadonlyArray1<'py, f32>,
    sigma_p: PyReadonlyArray1<'py, f32>,
    seed: u64,
    block_id: u64,
    kappa: u32,
    early_stop: bool,
    threads: Option<usize>,
    version: u8,
) -> PyResult<(u32, Bound<'py, PyArray1<f32>>, u64)> {
    let generator = generator_of(version)?;
    let block = Block {
        mu_q: mu_q.as_slice()?,
        sigma_q: sigma_q.as_slice()?,
        mu_p: mu_p.as_slice()?,
        sigma_p: sigma_p.as_slice()?,
    };
    let enc = py
        .detach(|| {
            on_threads(threads, || {
                search::encode_block(&block, seed, block_id, kappa, early_stop, generator)
            })
        })?
        .map_err(input_err)?;
    Ok((enc.index, PyArray1::from_vec(py, enc.sample), enc.scored))
}

#[pyfunction]
#[pyo3(signature = (mu_q, sigma_q, mu_p, sigma_p, sizes, block_ids, *, seed, kappa, early_stop=true, threads=None, version=container::VERSION))]
#[allow(clippy::too_many_arguments)]
fn encode_blocks<'py>(
    py: Python<'py>,
    mu_q: PyReadonlyArray1<'py, f32>,
    sigma_q: PyReadonlyArray1<'py, f32>,
    mu_p: PyReadonlyArray1<'py, f32>,
    sigma_p: PyReadonlyArray1<'py, f32>,
    sizes: PyReadonlyArray1<'py, u64>,
    block_ids: PyReadonlyArray1<'py, u64>,
    seed: u64,
    kappa: u32,
    early_stop: bool,
    threads: Option<usize>,
    version: u8,
) -> PyResult<SearchResult<'py>> {
    let generator = generator_of(version)?;
    let sizes = sizes.as_slice()?;
    let (a, b, c, d) = (
        split(mu_q.as_slice()?, sizes, "mu_q")?,
        split(sigma_q.as_slice()?, sizes, "sigma_q")?,
        split(mu_p.as_slice()?, sizes, "mu_p")?,
        split(sigma_p.as_slice()?, sizes, "sigma_p")?,
    );
    let blocks: Vec<Block> = (0..sizes.len())
        .map(|i| Block {
            mu_q: a[i],
            sigma_q: b[i],
            mu_p: c[i],
            sigma_p: d[i],
        })
        .collect();
    let ids = block_ids.as_slice()?;
    let encoded = py
        .detach(|| {
            on_threads(threads, || {
                search::encode_blocks(&blocks, ids, seed, kappa, early_stop, generator)
            })
        })?
        .map_err(input_err)?;
    let indices: Vec<u32> = encoded.iter().map(|e| e.index).collect();
    let scored = encoded.iter().map(|e| e.scored).sum();
    let samples: Vec<f32> = encoded.into_iter().flat_map(|e| e.sample).collect();
    Ok((
        PyArray1::from_vec(py, indices),
        PyArray1::from_vec(py, samples),
        scored,
    ))
}

#[pyfunction]
#[pyo3(signature = (mu_p, sigma_p, *, seed, block_id, index, kappa, version=container::VERSION))]
#[allow(clippy::too_many_arguments)]
fn decode_block<'py>(
    py: Python<'py>,
    mu_p: PyReadonlyArray1<'py, f32>,
    sigma_p: PyReadonlyArray1<'py, f32>,
    seed: u64,
    block_id: u64,
    index: u64,
    kappa: u32,
    version: u8,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let generator = generator_of(version)?;
    let (m, s) = (mu_p.as_slice()?, sigma_p.as_slice()?);
    let out = py
        .detach(|| search::decode_block(m, s, seed, block_id, index, kappa, generator))
        .map_err(input_err)?;
    Ok(PyArray1::from_vec(py, out))
}

#[pyfunction]
#[pyo3(signature = (mu_p, sigma_p, sizes, block_ids, indices, *, seed, kappa, version=container::VERSION))]
#[allow(clippy::too_many_arguments)]
fn decode_blocks<'py>(
    py: Python<'py>,
    mu_p: PyReadonlyArray1<'py, f32>,
    sigma_p: PyReadonlyArray1<'py, f32>,
    sizes: PyReadonlyArray1<'py, u64>,
    block_ids: PyReadonlyArray1<'py, u64>,
    indices: PyReadonlyArray1<'py, u32>,
    seed: u64,
    kappa: u32,
    version: u8,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let generator = generator_of(version)?;
    let sizes = sizes.as_slice()?;
    let (m, s) = (
        split(mu_p.as_slice()?, sizes, "mu_p")?,
        split(sigma_p.as_slice()?, sizes, "sigma_p")?,
    );
    let (ids, idx) = (block_ids.as_slice()?, indices.as_slice()?);
    let out = py
        .detach(|| search::decode_blocks(&m, &s, ids, idx, seed, kappa, generator))
        .map_err(input_err)?;
    Ok(PyArray1::from_vec(py, out))
}

/// Standard normals of candidate `index` of a block, for golden vectors: binary64 under the
/// ChaCha20 generator (versions 1 and 2), binary32 under the Philox generator (version 3).
#[pyfunction]
#[pyo3(signature = (*, seed, block_id, dim, index, version=container::VERSION))]
fn candidate_normals<'py>(
    py: Python<'py>,
    seed: u64,
    block_id: u64,
    dim: usize,
    index: u64,
    version: u8,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    if dim == 0 || dim > search::MAX_BLOCK_DIM {
        return Err(PyValueError::new_err(format!(
            "dim must be in 1..={}",
            search::MAX_BLOCK_DIM
        )));
    }
    let array = match generator_of(version)? {
        Generator::ChaCha20 => {
            PyArray1::from_vec(py, sampler::candidate_normals(seed, block_id, dim, index))
                .into_any()
        }
        Generator::Philox => {
            let index = u32::try_from(index)
                .ok()
                .filter(|&i| i >> search::MAX_KAPPA == 0)
                .ok_or_else(|| PyValueError::new_err("a version-3 index is below 2^20"))?;
            PyArray1::from_vec(py, sampler::candidate_normals32(seed, block_id, dim, index))
                .into_any()
        }
    };
    Ok(array.cast_into::<PyUntypedArray>()?)
}

/// The encoder's ordered Gumbel sequence of a block (first `n` values).
#[pyfunction]
#[pyo3(signature = (*, seed, block_id, n))]
fn ordered_gumbels<'py>(
    py: Python<'py>,
    seed: u64,
    block_id: u64,
    n: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    if n > 1 << search::MAX_KAPPA {
        return Err(PyValueError::new_err("n must be <= 2^20"));
    }
    Ok(PyArray1::from_vec(
        py,
        py.detach(|| search::ordered_gumbels(seed, block_id, n)),
    ))
}

/// The seeded permutation of 0..n that spreads blocks across patches (`combiner.blocks`).
#[pyfunction]
#[pyo3(signature = (*, seed, n))]
fn permutation(py: Python<'_>, seed: u64, n: u64) -> PyResult<Bound<'_, PyArray1<u32>>> {
    let perm = py
        .detach(|| shuffle::permutation(seed, n))
        .map_err(input_err)?;
    Ok(PyArray1::from_vec(py, perm))
}

/// The 32-byte ChaCha20 key of the candidate stream for `seed` (input of the GPU search).
#[pyfunction]
#[pyo3(signature = (*, seed))]
fn candidate_key(py: Python<'_>, seed: u64) -> Bound<'_, PyBytes> {
    PyBytes::new(py, &rng::derive_key(rng::CANDIDATE_DOMAIN, seed))
}

/// Raw ChaCha20 keystream bytes for a 32-byte key, 64-bit stream and 32-bit word position.
#[pyfunction]
#[pyo3(signature = (key, *, stream, word_pos, nbytes))]
fn chacha20_keystream<'py>(
    py: Python<'py>,
    key: &[u8],
    stream: u64,
    word_pos: u128,
    nbytes: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| PyValueError::new_err("key must be 32 bytes"))?;
    if nbytes > 1 << 24 {
        return Err(PyValueError::new_err("nbytes must be <= 2^24"));
    }
    let mut s = rng::WordStream::from_key(key, stream, 0);
    s.rng_mut().set_word_pos(word_pos);
    let mut buf = vec![0u8; nbytes];
    rand_core::Rng::fill_bytes(s.rng_mut(), &mut buf);
    Ok(PyBytes::new(py, &buf))
}

fn modality_from(name: &str) -> PyResult<Modality> {
    Modality::from_name(name).ok_or_else(|| {
        InvalidFieldError::new_err(format!("modality must be 'image' or 'audio', got {name:?}"))
    })
}

#[pyfunction]
#[pyo3(signature = (*, modality, kappa, height, width, channels, sample_rate, seed, prior_hash, prior_id, indices, spread_blocks=false, version=container::VERSION))]
#[allow(clippy::too_many_arguments)]
fn pack<'py>(
    py: Python<'py>,
    modality: &str,
    kappa: u32,
    height: u32,
    width: u32,
    channels: u8,
    sample_rate: u32,
    seed: u64,
    prior_hash: &[u8],
    prior_id: String,
    indices: PyReadonlyArray1<'py, u32>,
    spread_blocks: bool,
    version: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let prior_hash: [u8; container::PRIOR_HASH_LEN] = prior_hash
        .try_into()
        .map_err(|_| InvalidFieldError::new_err("prior_hash must be 8 bytes"))?;
    let header = Header {
        modality: modality_from(modality)?,
        kappa,
        height,
        width,
        channels,
        sample_rate,
        seed,
        prior_hash,
        prior_id,
        spread_blocks,
        version,
    };
    let data = container::pack(&header, indices.as_slice()?).map_err(format_err)?;
    Ok(PyBytes::new(py, &data))
}

#[pyfunction]
fn unpack<'py>(
    py: Python<'py>,
    data: &[u8],
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyArray1<u32>>)> {
    let (h, indices) = py.detach(|| container::unpack(data)).map_err(format_err)?;
    Ok((header_dict(py, h)?, PyArray1::from_vec(py, indices)))
}

/// The 32-byte content hash of a prior file (docs/format.md section 5), after validating it.
#[pyfunction]
fn prior_content_hash<'py>(py: Python<'py>, prior: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let prior = py
        .detach(|| Prior::from_bytes(prior))
        .map_err(|e| PriorFormatError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &prior.hash))
}

/// Decode a bitstream with a prior file: (header fields, uint8 [H, W, C] image or int16 [T]
/// clip). `simd=False` runs the baseline instantiation (same bits, for tests).
#[pyfunction]
#[pyo3(signature = (data, prior, *, threads=None, simd=true))]
fn decode<'py>(
    py: Python<'py>,
    data: &[u8],
    prior: &[u8],
    threads: Option<usize>,
    simd: bool,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyUntypedArray>)> {
    let isa = if simd { Isa::detect() } else { Isa::Portable };
    let (header, samples) = py
        .detach(|| {
            on_threads(threads, || {
                let prior = Prior::from_bytes(prior)?;
                decoder::decode(data, &prior, isa)
            })
        })?
        .map_err(decode_err)?;
    let (h, w, c) = (
        header.height as usize,
        header.width as usize,
        header.channels as usize,
    );
    let array = match samples {
        Samples::Image(v) => v.into_pyarray(py).reshape([h, w, c])?.into_any(),
        Samples::Audio(v) => v.into_pyarray(py).into_any(),
    };
    Ok((
        header_dict(py, header)?,
        array.cast_into::<PyUntypedArray>()?,
    ))
}

fn header_dict(py: Python<'_>, h: Header) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("modality", h.modality.name())?;
    d.set_item("kappa", h.kappa)?;
    d.set_item("height", h.height)?;
    d.set_item("width", h.width)?;
    d.set_item("channels", h.channels)?;
    d.set_item("sample_rate", h.sample_rate)?;
    d.set_item("seed", h.seed)?;
    d.set_item("prior_hash", PyBytes::new(py, &h.prior_hash))?;
    d.set_item("prior_id", h.prior_id)?;
    d.set_item("spread_blocks", h.spread_blocks)?;
    d.set_item("version", h.version)?;
    Ok(d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("TruncatedError", py.get_type::<TruncatedError>())?;
    m.add("BadMagicError", py.get_type::<BadMagicError>())?;
    m.add(
        "UnsupportedVersionError",
        py.get_type::<UnsupportedVersionError>(),
    )?;
    m.add("ChecksumError", py.get_type::<ChecksumError>())?;
    m.add("InvalidFieldError", py.get_type::<InvalidFieldError>())?;
    m.add("TrailingDataError", py.get_type::<TrailingDataError>())?;
    m.add("PriorFormatError", py.get_type::<PriorFormatError>())?;
    m.add("PriorMismatchError", py.get_type::<PriorMismatchError>())?;
    m.add("MAX_SIGNAL_WEIGHTS", decoder::MAX_SIGNAL_WEIGHTS)?;
    m.add("FORMAT_VERSION", container::VERSION)?;
    m.add("MAX_KAPPA", search::MAX_KAPPA)?;
    m.add("MAX_BLOCK_DIM", search::MAX_BLOCK_DIM)?;
    m.add_function(wrap_pyfunction!(encode_block, m)?)?;
    m.add_function(wrap_pyfunction!(encode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(decode_block, m)?)?;
    m.add_function(wrap_pyfunction!(decode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(candidate_normals, m)?)?;
    m.add_function(wrap_pyfunction!(ordered_gumbels, m)?)?;
    m.add_function(wrap_pyfunction!(chacha20_keystream, m)?)?;
    m.add_function(wrap_pyfunction!(candidate_key, m)?)?;
    m.add_function(wrap_pyfunction!(permutation, m)?)?;
    m.add_function(wrap_pyfunction!(pack, m)?)?;
    m.add_function(wrap_pyfunction!(unpack, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(prior_content_hash, m)?)?;
    Ok(())
}
