//! The combiner bitstream, format versions 1 to 3. The normative description is
//! `docs/format.md`; this module implements exactly that document. Summary (`varint` = unsigned
//! LEB128, canonical, at most 10 bytes; fixed-width integers little-endian):
//!
//! | field | encoding |
//! |---|---|
//! | magic | 3 bytes `CMB` |
//! | version | u8: 1 or 2 (ChaCha20 candidates; 2 exactly when a flag is set), or 3 (Philox) |
//! | modality | u8: 1 image, 2 audio |
//! | kappa | u8, 1..=20 |
//! | flags | u8: version 1: 0; version 2: 1; version 3: 0 or 1 (bit 0, spread blocks) |
//! | height (image rows or audio samples), width, channels, sample rate, seed | 5 varints |
//! | prior hash | 8 bytes: the first 8 bytes of the prior's SHA-256 content hash |
//! | prior id | u8 length L (0..=64), then L ASCII bytes `[A-Za-z0-9._-]` |
//! | block count B | varint, <= 2^24 |
//! | indices | ceil(B*kappa/8) bytes, kappa bits each, MSB first, zero padded |
//! | CRC-32 | u32 (ISO-HDLC, as zlib) of every preceding byte |
//!
//! Small signals are the reason for the variable-length fields: a 32 x 32 thumbnail at 0.5 bpp
//! has a 64-byte payload, so every header byte costs 0.008 bpp.
//!
//! The parser reads nothing past the buffer, allocates only after the length is proven exact,
//! and reports every defect as a [`FormatError`]. Accepted inputs are canonical: re-packing the
//! parsed header and indices gives back the same bytes.

use crate::bits::{BitReader, BitWriter};
use crate::error::FormatError;
use crate::sampler::Generator;
use crate::search::MAX_KAPPA;

pub const MAGIC: [u8; 3] = *b"CMB";
/// The newest version this build reads and writes. Versions 1 and 2 share the ChaCha20 candidate
/// generator (version 2 exactly when a flag is set, so that every stream has one encoding);
/// version 3 has the Philox generator, with or without flags.
pub const VERSION: u8 = 3;
/// Flag bit 0 (version 2): the blocks span patches (docs/format.md, "Spread blocks").
pub const FLAG_SPREAD_BLOCKS: u8 = 1;
pub const PRIOR_HASH_LEN: usize = 8;
pub const MAX_PRIOR_ID_LEN: usize = 64;
pub const MAX_BLOCKS: u64 = 1 << 24;
/// At most 2^30 samples (pixels x channels or audio samples) in one signal.
pub const MAX_SIGNAL_VALUES: u64 = 1 << 30;
pub const MAX_SAMPLE_RATE: u64 = 1_000_000;
const CRC_LEN: usize = 4;
const MAX_VARINT_LEN: usize = 10;

/// What kind of signal a bitstream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modality {
    Image = 1,
    Audio = 2,
}

impl Modality {
    /// The name used by the Python API and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Image => "image",
            Modality::Audio => "audio",
        }
    }

    /// The modality called `name`, if any.
    pub fn from_name(name: &str) -> Option<Modality> {
        match name {
            "image" => Some(Modality::Image),
            "audio" => Some(Modality::Audio),
            _ => None,
        }
    }
}

/// Everything in a bitstream except the indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub modality: Modality,
    pub kappa: u32,
    /// Image rows, or audio samples.
    pub height: u32,
    /// Image columns; 1 for audio.
    pub width: u32,
    pub channels: u8,
    /// Audio sample rate in Hz; 0 for images.
    pub sample_rate: u32,
    pub seed: u64,
    /// The first 8 bytes of the prior's content hash.
    pub prior_hash: [u8; PRIOR_HASH_LEN],
    /// The prior's name (may be empty: then the hash alone identifies it).
    pub prior_id: String,
    /// The blocks span patches, cut from the seeded permutation of all weights (versions 2, 3).
    pub spread_blocks: bool,
    /// The format version: 1 or 2 (ChaCha20 candidates; 1 without flags, 2 with spread blocks)
    /// or 3 (Philox candidates). It selects the candidate generator (`generator`).
    pub version: u8,
}

fn invalid(field: &'static str, why: impl Into<String>) -> FormatError {
    FormatError::InvalidField {
        field,
        why: why.into(),
    }
}

/// The ChaCha20 version (1 or 2) that expresses `spread_blocks`: the canonical choice between
/// the two.
pub fn chacha_version(spread_blocks: bool) -> u8 {
    if spread_blocks { 2 } else { 1 }
}

/// Whether `flags` may be set in a stream of `version` (section 3, check 5).
fn flags_allowed(version: u8, flags: u8) -> bool {
    match version {
        1 => flags == 0,
        2 => flags == FLAG_SPREAD_BLOCKS,
        _ => flags & !FLAG_SPREAD_BLOCKS == 0,
    }
}

impl Header {
    /// The candidate generator of this header's version. Meaningful for a header that passed
    /// `validate` (as every parsed one has): other versions read as the newest.
    pub fn generator(&self) -> Generator {
        Generator::of_version(self.version).unwrap_or(Generator::Philox)
    }

    fn flags(&self) -> u8 {
        if self.spread_blocks {
            FLAG_SPREAD_BLOCKS
        } else {
            0
        }
    }

    /// Check every field against the allowed values of the format.
    pub fn validate(&self) -> Result<(), FormatError> {
        if !(1..=VERSION).contains(&self.version) {
            return Err(invalid(
                "version",
                format!("{} is not in 1..={VERSION}", self.version),
            ));
        }
        if !flags_allowed(self.version, self.flags()) {
            return Err(invalid(
                "version",
                format!(
                    "spread_blocks = {} needs version {} or 3, not {}",
                    self.spread_blocks,
                    chacha_version(self.spread_blocks),
                    self.version
                ),
            ));
        }
        if !(1..=MAX_KAPPA).contains(&self.kappa) {
            return Err(invalid(
                "kappa",
                format!("{} is not in 1..={MAX_KAPPA}", self.kappa),
            ));
        }
        if self.height == 0 || self.width == 0 {
            return Err(invalid("shape", "height and width must be >= 1"));
        }
        let values = u64::from(self.height) * u64::from(self.width) * u64::from(self.channels);
        if values > MAX_SIGNAL_VALUES {
            return Err(invalid(
                "shape",
                format!("{values} values exceed the limit of 2^30"),
            ));
        }
        match self.modality {
            Modality::Image => {
                if !(1..=4).contains(&self.channels) {
                    return Err(invalid("channels", "an image has 1 to 4 channels"));
                }
                if self.sample_rate != 0 {
                    return Err(invalid("sample_rate", "must be 0 for an image"));
                }
            }
            Modality::Audio => {
                if self.width != 1 || self.channels != 1 {
                    return Err(invalid("shape", "audio is mono with width 1"));
                }
                if !(1..=MAX_SAMPLE_RATE).contains(&u64::from(self.sample_rate)) {
                    return Err(invalid("sample_rate", format!("{} Hz", self.sample_rate)));
                }
            }
        }
        let id = self.prior_id.as_bytes();
        if id.len() > MAX_PRIOR_ID_LEN {
            return Err(invalid(
                "prior_id",
                format!("length {} exceeds 64", id.len()),
            ));
        }
        if !id
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                "prior_id",
                "only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Serialise a header and its block indices.
pub fn pack(header: &Header, indices: &[u32]) -> Result<Vec<u8>, FormatError> {
    header.validate()?;
    if indices.len() as u64 > MAX_BLOCKS {
        return Err(invalid(
            "block_count",
            format!("{} blocks exceed 2^24", indices.len()),
        ));
    }
    if let Some(&bad) = indices.iter().find(|&&i| u64::from(i) >> header.kappa != 0) {
        return Err(invalid(
            "indices",
            format!("{bad} does not fit in kappa = {} bits", header.kappa),
        ));
    }
    let id = header.prior_id.as_bytes();
    let payload = (indices.len() * header.kappa as usize).div_ceil(8);
    let mut out = Vec::with_capacity(64 + id.len() + payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[
        header.version,
        header.modality as u8,
        header.kappa as u8,
        header.flags(),
    ]);
    put_varint(&mut out, u64::from(header.height));
    put_varint(&mut out, u64::from(header.width));
    put_varint(&mut out, u64::from(header.channels));
    put_varint(&mut out, u64::from(header.sample_rate));
    put_varint(&mut out, header.seed);
    out.extend_from_slice(&header.prior_hash);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    put_varint(&mut out, indices.len() as u64);
    let mut bits = BitWriter::with_capacity_bits(indices.len() * header.kappa as usize);
    indices.iter().for_each(|&i| bits.write(i, header.kappa));
    out.extend_from_slice(&bits.finish());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A bounds-checked cursor.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(FormatError::Truncated {
            needed: self.pos.saturating_add(n).saturating_add(CRC_LEN),
            have: self.data.len(),
        })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    /// A canonical LEB128 varint no larger than `max`.
    fn varint(&mut self, field: &'static str, max: u64) -> Result<u64, FormatError> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7F);
            if i == MAX_VARINT_LEN - 1 && bits > 1 {
                return Err(invalid(field, "varint overflows 64 bits"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && bits == 0 {
                    return Err(invalid(field, "non-canonical varint (trailing zero byte)"));
                }
                if value > max {
                    return Err(invalid(field, format!("{value} exceeds {max}")));
                }
                return Ok(value);
            }
        }
        Err(invalid(field, "varint longer than 10 bytes"))
    }
}

/// Parse a bitstream into its header and block indices.
pub fn unpack(data: &[u8]) -> Result<(Header, Vec<u32>), FormatError> {
    let mut c = Cursor { data, pos: 0 };
    let magic: [u8; 3] = c.take(3)?.try_into().expect("3 bytes");
    if magic != MAGIC {
        return Err(FormatError::BadMagic { found: magic });
    }
    let version = c.u8()?;
    if !(1..=VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let modality = c.u8()?;
    let kappa = u32::from(c.u8()?);
    let flags = c.u8()?;
    let height = c.varint("height", u64::from(u32::MAX))? as u32;
    let width = c.varint("width", u64::from(u32::MAX))? as u32;
    let channels = c.varint("channels", 255)? as u8;
    let sample_rate = c.varint("sample_rate", MAX_SAMPLE_RATE)? as u32;
    let seed = c.varint("seed", u64::MAX)?;
    let prior_hash: [u8; PRIOR_HASH_LEN] = c.take(PRIOR_HASH_LEN)?.try_into().expect("8 bytes");
    let id_len = usize::from(c.u8()?);
    if id_len > MAX_PRIOR_ID_LEN {
        return Err(invalid("prior_id", format!("length {id_len} exceeds 64")));
    }
    let id_bytes = c.take(id_len)?;
    let count = c.varint("block_count", MAX_BLOCKS)?;
    if !(1..=MAX_KAPPA).contains(&kappa) {
        return Err(invalid(
            "kappa",
            format!("{kappa} is not in 1..={MAX_KAPPA}"),
        ));
    }
    // Exact length before anything is allocated (count <= 2^24 and kappa <= 20: no overflow).
    let payload = (count as usize * kappa as usize).div_ceil(8);
    let expected = c.pos + payload + CRC_LEN;
    if data.len() < expected {
        return Err(FormatError::Truncated {
            needed: expected,
            have: data.len(),
        });
    }
    if data.len() > expected {
        return Err(FormatError::TrailingData {
            extra: data.len() - expected,
        });
    }
    let body = &data[..expected - CRC_LEN];
    let stored = u32::from_le_bytes(data[expected - CRC_LEN..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(FormatError::BadChecksum { stored, computed });
    }
    // Canonical: version 1 has no flags; version 2 is used only when one of its flags is set;
    // version 3 takes its flags with or without a set one.
    if !flags_allowed(version, flags) {
        return Err(invalid(
            "flags",
            format!("{flags:#04x} is not allowed in version {version}"),
        ));
    }
    let modality = match modality {
        1 => Modality::Image,
        2 => Modality::Audio,
        other => return Err(invalid("modality", format!("unknown value {other}"))),
    };
    let prior_id = std::str::from_utf8(id_bytes)
        .map_err(|_| invalid("prior_id", "not ASCII"))?
        .to_owned();
    let header = Header {
        modality,
        kappa,
        height,
        width,
        channels,
        sample_rate,
        seed,
        prior_hash,
        prior_id,
        spread_blocks: flags & FLAG_SPREAD_BLOCKS != 0,
        version,
    };
    header.validate()?;
    let mut reader = BitReader::new(&body[c.pos..]);
    let mut indices = Vec::with_capacity(count as usize);
    for _ in 0..count {
        // Cannot fail: the payload length was checked above.
        let index = reader
            .read(kappa)
            .ok_or(invalid("indices", "payload too short"))?;
        indices.push(index);
    }
    if !reader.rest_is_zero() {
        return Err(invalid(
            "padding",
            "the unused bits of the last byte must be zero",
        ));
    }
    Ok((header, indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            modality: Modality::Image,
            kappa: 16,
            height: 33,
            width: 47,
            channels: 3,
            sample_rate: 0,
            seed: 0xDEAD_BEEF,
            prior_hash: [7; 8],
            prior_id: "thumbnail-q2".into(),
            spread_blocks: false,
            version: 1,
        }
    }

    #[test]
    fn chacha_streams_are_version_2_exactly_with_spread_blocks() {
        let plain = pack(&header(), &[5]).unwrap();
        assert_eq!((plain[3], plain[6]), (1, 0));
        let spread = Header {
            spread_blocks: true,
            version: 2,
            ..header()
        };
        let data = pack(&spread, &[5]).unwrap();
        assert_eq!((data[3], data[6]), (2, FLAG_SPREAD_BLOCKS));
        assert_eq!(unpack(&data).unwrap(), (spread, vec![5]));
        // A header whose version does not fit its flags is not written.
        for (version, spread_blocks) in [(1, true), (2, false), (0, false), (4, true)] {
            let bad = Header {
                version,
                spread_blocks,
                ..header()
            };
            assert!(pack(&bad, &[5]).is_err(), "version {version}");
        }
        // Non-canonical or unknown combinations, with a valid CRC, are refused.
        for (version, flags) in [
            (1u8, 1u8),
            (2, 0),
            (2, 2),
            (2, 3),
            (3, 2),
            (3, 3),
            (4, 0),
            (4, 1),
        ] {
            let mut bad = plain.clone();
            bad[3] = version;
            bad[6] = flags;
            let n = bad.len() - 4;
            let crc = crc32fast::hash(&bad[..n]);
            bad[n..].copy_from_slice(&crc.to_le_bytes());
            assert!(unpack(&bad).is_err(), "version {version} flags {flags}");
        }
    }

    #[test]
    fn version_3_takes_either_layout() {
        for spread_blocks in [false, true] {
            let h = Header {
                version: 3,
                spread_blocks,
                ..header()
            };
            let data = pack(&h, &[5, 6]).unwrap();
            assert_eq!((data[3], data[6]), (3, u8::from(spread_blocks)));
            let (back, idx) = unpack(&data).unwrap();
            assert_eq!((back.generator(), idx), (Generator::Philox, vec![5, 6]));
            assert_eq!(back, h);
        }
    }

    #[test]
    fn round_trip() {
        let idx = vec![0, 1, 65535, 1234, 42];
        let data = pack(&header(), &idx).unwrap();
        // 7 fixed bytes, varints 33 47 3 0 and a 4-byte seed varint, hash, id, count, payload, CRC.
        assert_eq!(data.len(), 7 + 4 + 5 + 8 + 1 + 12 + 1 + 10 + 4);
        assert_eq!(unpack(&data).unwrap(), (header(), idx));
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let data = pack(&header(), &[1, 2, 3]).unwrap();
        for n in 0..data.len() {
            assert!(unpack(&data[..n]).is_err());
        }
    }

    #[test]
    fn single_bit_flips_are_detected() {
        let data = pack(&header(), &[9, 8, 7]).unwrap();
        for i in 0..data.len() * 8 {
            let mut bad = data.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(unpack(&bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn refuses_indices_wider_than_kappa() {
        let mut h = header();
        h.kappa = 4;
        assert!(matches!(
            pack(&h, &[16]),
            Err(FormatError::InvalidField { .. })
        ));
    }
}
