//! The prior file (docs/format.md section 5): a safetensors file with the prior's tensors and
//! metadata, read as hostile input, and its content hash.
//!
//! Invariants of a `Prior` (established by `Prior::from_bytes`, relied upon by the decoder):
//! `mean`, `std` and `block_index` have the network's D entries; means are finite, stds finite
//! and > 0; the parts are exactly 0..J-1, each used; `mix` (when present) has K finite entries;
//! the patch shape has one positive size (at most 2^16) per coordinate axis; D <= 2^27.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::container::Modality;
use crate::network::NetworkConfig;

/// A prior file above this size is refused before it is parsed.
pub const MAX_PRIOR_BYTES: usize = 1 << 30;
/// A safetensors JSON header above this size is refused.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// The largest patch size along one axis.
pub const MAX_PATCH_SIZE: u64 = 1 << 16;
/// The most parameters per patch (one patch may not exceed the signal's weight limit).
pub const MAX_PARAMS: u64 = 1 << 27;
const HASH_DOMAIN: &[u8] = b"combiner-prior-hash-v1\0";
const FORMAT: &str = "combiner-prior";
const METADATA_KEYS: [&str; 6] = ["config", "format", "kappa", "kind", "seed", "version"];

/// Why a prior file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid prior file: {0}")]
pub struct PriorFormatError(pub String);

fn bad(why: impl Into<String>) -> PriorFormatError {
    PriorFormatError(why.into())
}

/// A decoded prior file.
#[derive(Clone, Debug)]
pub struct Prior {
    pub config: NetworkConfig,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The part (0..J-1) of every parameter.
    pub block_index: Vec<u32>,
    pub num_parts: usize,
    pub mix: Option<Vec<f32>>,
    pub kappa: u32,
    pub seed: u64,
    pub modality: Modality,
    pub patch_shape: Vec<usize>,
    /// `kind.name`, or empty.
    pub name: String,
    /// The 32-byte content hash.
    pub hash: [u8; 32],
}

impl Prior {
    /// Parse and validate a prior file.
    pub fn from_bytes(data: &[u8]) -> Result<Prior, PriorFormatError> {
        if data.len() > MAX_PRIOR_BYTES {
            return Err(bad(format!(
                "{} bytes exceed the limit of 2^30",
                data.len()
            )));
        }
        if data.len() < 8 {
            return Err(bad("too short to be a safetensors file"));
        }
        let header_len = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        if header_len > MAX_HEADER_BYTES {
            return Err(bad("the safetensors header is too large"));
        }
        let (_, layout) = SafeTensors::read_metadata(data).map_err(|e| bad(format!("{e}")))?;
        let meta = layout
            .metadata()
            .clone()
            .ok_or_else(|| bad("no metadata"))?;
        let tensors = SafeTensors::deserialize(data).map_err(|e| bad(format!("{e}")))?;
        let get = |key: &str| -> Result<&str, PriorFormatError> {
            meta.get(key)
                .map(String::as_str)
                .ok_or_else(|| bad(format!("metadata lacks {key:?}")))
        };
        if get("format")? != FORMAT {
            return Err(bad("not a combiner prior (metadata format)"));
        }
        let version = get("version")?;
        let with_mix = match version {
            "1" => false,
            "2" => true,
            other => return Err(bad(format!("unsupported prior version {other:?}"))),
        };
        let config = NetworkConfig::from_json(get("config")?).map_err(bad)?;
        let d = config.num_params();
        if d > MAX_PARAMS {
            return Err(bad(format!(
                "the network has {d} parameters, more than 2^27"
            )));
        }
        let kappa = decimal(get("kappa")?, "kappa")?;
        if !(1..=64).contains(&kappa) {
            return Err(bad("kappa must be in 1..=64"));
        }
        let seed = decimal(get("seed")?, "seed")?;
        let kind = Kind::parse(get("kind")?, &config)?;

        let mut expected = vec!["block_index", "mean", "std"];
        if with_mix {
            expected.push("mix");
        }
        let mut names = tensors.names();
        names.sort_unstable();
        expected.sort_unstable();
        if names != expected {
            return Err(bad(format!(
                "expected the tensors {expected:?}, found {names:?}"
            )));
        }
        let d = d as usize;
        let mean = f32_tensor(&tensors, "mean", d)?;
        let std = f32_tensor(&tensors, "std", d)?;
        if mean.iter().any(|m| !m.is_finite()) {
            return Err(bad("mean has non-finite entries"));
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(bad("std must be finite and > 0"));
        }
        let (block_index, num_parts) = parts(&tensors, d)?;
        let mix = if with_mix {
            let k = config.mix_size() as usize; // <= a few times D: bounded above
            let mix = f32_tensor(&tensors, "mix", k)?;
            if mix.iter().any(|m| !m.is_finite()) {
                return Err(bad("mix has non-finite entries"));
            }
            Some(mix)
        } else {
            None
        };
        let hash = content_hash(&meta, &tensors)?;
        Ok(Prior {
            config,
            mean,
            std,
            block_index,
            num_parts,
            mix,
            kappa: kappa as u32,
            seed,
            modality: kind.modality,
            patch_shape: kind.patch_shape,
            name: kind.name,
            hash,
        })
    }

    /// D, the parameters per patch.
    pub fn num_params(&self) -> usize {
        self.mean.len()
    }

    /// Points per patch.
    pub fn patch_points(&self) -> usize {
        self.patch_shape.iter().product()
    }

    /// The parameter indices of every part, ascending.
    pub fn part_members(&self) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.num_parts];
        for (i, &j) in self.block_index.iter().enumerate() {
            out[j as usize].push(i as u32);
        }
        out
    }
}

/// The fields of `kind` that decoding needs.
struct Kind {
    modality: Modality,
    patch_shape: Vec<usize>,
    name: String,
}

impl Kind {
    fn parse(text: &str, config: &NetworkConfig) -> Result<Kind, PriorFormatError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("kind is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("kind is not a JSON object"))?;
        let modality = object
            .get("modality")
            .and_then(serde_json::Value::as_str)
            .and_then(Modality::from_name)
            .ok_or_else(|| bad("kind.modality must be \"image\" or \"audio\""))?;
        let axes = match modality {
            Modality::Image => 2,
            Modality::Audio => 1,
        };
        if config.in_dim != axes {
            return Err(bad("config.in_dim does not match kind.modality"));
        }
        let patch_shape = object
            .get("patch_shape")
            .and_then(serde_json::Value::as_array)
            .filter(|a| a.len() == axes)
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().filter(|s| (1..=MAX_PATCH_SIZE).contains(s)))
                    .map(|s| s.map(|s| s as usize))
                    .collect::<Option<Vec<usize>>>()
            })
            .ok_or_else(|| {
                bad(format!(
                    "kind.patch_shape must hold {axes} integers in 1..=65536"
                ))
            })?;
        let name = match object.get("name") {
            None => String::new(),
            Some(v) => v
                .as_str()
                .ok_or_else(|| bad("kind.name must be a string"))?
                .to_owned(),
        };
        Ok(Kind {
            modality,
            patch_shape,
            name,
        })
    }
}

/// A decimal integer of the metadata: digits only, no leading zero, at most 20 digits.
fn decimal(text: &str, key: &str) -> Result<u64, PriorFormatError> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| {
            bad(format!(
                "metadata {key} must be a decimal integer, got {text:?}"
            ))
        })
}

fn tensor<'a>(
    tensors: &'a SafeTensors<'a>,
    name: &str,
    dtype: Dtype,
    len: usize,
) -> Result<&'a [u8], PriorFormatError> {
    let view = tensors.tensor(name).map_err(|e| bad(format!("{e}")))?;
    if view.dtype() != dtype || view.shape() != [len] {
        return Err(bad(format!(
            "{name} must be {dtype:?} of shape [{len}], got {:?} {:?}",
            view.dtype(),
            view.shape()
        )));
    }
    Ok(view.data())
}

fn f32_tensor(tensors: &SafeTensors, name: &str, len: usize) -> Result<Vec<f32>, PriorFormatError> {
    let raw = tensor(tensors, name, Dtype::F32, len)?;
    Ok(raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

/// The partition: every entry in 0..J-1 (J <= D), each part used.
fn parts(tensors: &SafeTensors, d: usize) -> Result<(Vec<u32>, usize), PriorFormatError> {
    let raw = tensor(tensors, "block_index", Dtype::I64, d)?;
    let mut index = Vec::with_capacity(d);
    for b in raw.chunks_exact(8) {
        let v = i64::from_le_bytes(b.try_into().expect("8 bytes"));
        if !(0..d as i64).contains(&v) {
            return Err(bad("block_index entries must be in 0..D-1"));
        }
        index.push(v as u32);
    }
    let j = index.iter().max().map_or(0, |&m| m as usize + 1);
    let mut used = vec![false; j];
    for &v in &index {
        used[v as usize] = true;
    }
    if j == 0 || used.contains(&false) {
        return Err(bad(
            "block ids must be exactly 0..J-1, each used at least once",
        ));
    }
    Ok((index, j))
}

/// The content hash of section 5 from the stored metadata strings and the tensors.
fn content_hash(
    meta: &HashMap<String, String>,
    tensors: &SafeTensors,
) -> Result<[u8; 32], PriorFormatError> {
    let mut m = String::from("{");
    for (n, key) in METADATA_KEYS.iter().enumerate() {
        if n > 0 {
            m.push(',');
        }
        json_string(key, &mut m);
        m.push(':');
        json_string(&meta[*key], &mut m);
    }
    m.push('}');
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update((m.len() as u64).to_le_bytes());
    h.update(m.as_bytes());
    let mut names = tensors.names();
    names.sort_unstable();
    for name in names {
        let view = tensors.tensor(name).map_err(|e| bad(format!("{e}")))?;
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update((view.shape()[0] as u64).to_le_bytes());
        h.update(view.data()); // safetensors stores little-endian
    }
    Ok(h.finalize().into())
}

/// A JSON string as Python's `json.dumps(..., ensure_ascii=True)` writes it.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_like_python() {
        let mut s = String::new();
        json_string("a\"b\\c\nd\u{1}é😀", &mut s);
        assert_eq!(s, r#""a\"b\\c\nd\u0001\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn decimal_integers_are_canonical() {
        assert_eq!(decimal("0", "k"), Ok(0));
        assert_eq!(decimal("16", "k"), Ok(16));
        for bad in [
            "",
            "016",
            "+1",
            "1.0",
            "123456789012345678901",
            "18446744073709551616",
        ] {
            assert!(decimal(bad, "k").is_err(), "{bad}");
        }
    }
}
