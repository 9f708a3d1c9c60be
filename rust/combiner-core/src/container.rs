//! The combiner bitstream, format version 1. The normative description is `docs/format.md`;
//! this module implements exactly that document. Summary (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CMBR` |
//! | 4 | 1 | format version (1) |
//! | 5 | 1 | modality: 1 image, 2 audio |
//! | 6 | 1 | kappa, 1..=20 |
//! | 7 | 1 | flags, must be 0 |
//! | 8 | 4 | height (image rows) or sample count (audio) |
//! | 12 | 4 | width (image columns); 1 for audio |
//! | 16 | 1 | channels |
//! | 17 | 4 | sample rate in Hz (audio), 0 for images |
//! | 21 | 8 | seed |
//! | 29 | 32 | prior content hash |
//! | 61 | 1 | prior id length L, 1..=64 |
//! | 62 | L | prior id, ASCII `[A-Za-z0-9._-]` |
//! | 62+L | 4 | block count B, <= 2^24 |
//! | 66+L | ceil(B*kappa/8) | indices, kappa bits each, MSB first, zero padded |
//! | end-4 | 4 | CRC-32 (ISO-HDLC, as zlib) of every preceding byte |
//!
//! The parser reads nothing past the buffer, allocates only after the length is proven exact,
//! and reports every defect as a [`FormatError`].

use crate::bits::{BitReader, BitWriter};
use crate::error::FormatError;
use crate::search::MAX_KAPPA;

pub const MAGIC: [u8; 4] = *b"CMBR";
pub const VERSION: u8 = 1;
pub const MAX_PRIOR_ID_LEN: usize = 64;
pub const MAX_BLOCKS: u32 = 1 << 24;
/// At most 2^30 samples (pixels x channels or audio samples) in one signal.
pub const MAX_SIGNAL_VALUES: u64 = 1 << 30;
pub const MAX_SAMPLE_RATE: u32 = 1_000_000;
const FIXED_HEADER: usize = 62;
const CRC_LEN: usize = 4;

/// What kind of signal a bitstream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modality {
    Image = 1,
    Audio = 2,
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
    pub prior_hash: [u8; 32],
    pub prior_id: String,
}

fn invalid(field: &'static str, why: impl Into<String>) -> FormatError {
    FormatError::InvalidField {
        field,
        why: why.into(),
    }
}

impl Header {
    /// Check every field against the allowed values of format version 1.
    pub fn validate(&self) -> Result<(), FormatError> {
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
                if !(1..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
                    return Err(invalid("sample_rate", format!("{} Hz", self.sample_rate)));
                }
            }
        }
        let id = self.prior_id.as_bytes();
        if id.is_empty() || id.len() > MAX_PRIOR_ID_LEN {
            return Err(invalid(
                "prior_id",
                format!("length {} not in 1..=64", id.len()),
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

/// Serialise a header and its block indices.
pub fn pack(header: &Header, indices: &[u32]) -> Result<Vec<u8>, FormatError> {
    header.validate()?;
    if indices.len() > MAX_BLOCKS as usize {
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
    let mut out = Vec::with_capacity(FIXED_HEADER + id.len() + 4 + indices.len() * 3 + CRC_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(header.modality as u8);
    out.push(header.kappa as u8);
    out.push(0); // flags
    out.extend_from_slice(&header.height.to_le_bytes());
    out.extend_from_slice(&header.width.to_le_bytes());
    out.push(header.channels);
    out.extend_from_slice(&header.sample_rate.to_le_bytes());
    out.extend_from_slice(&header.seed.to_le_bytes());
    out.extend_from_slice(&header.prior_hash);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&(indices.len() as u32).to_le_bytes());
    let mut bits = BitWriter::with_capacity_bits(indices.len() * header.kappa as usize);
    indices.iter().for_each(|&i| bits.write(i, header.kappa));
    out.extend_from_slice(&bits.finish());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A bounds-checked little-endian cursor.
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
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Parse a bitstream into its header and block indices.
pub fn unpack(data: &[u8]) -> Result<(Header, Vec<u32>), FormatError> {
    let mut c = Cursor { data, pos: 0 };
    let magic: [u8; 4] = c.take(4)?.try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(FormatError::BadMagic { found: magic });
    }
    let version = c.u8()?;
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let modality = c.u8()?;
    let kappa = u32::from(c.u8()?);
    let flags = c.u8()?;
    let height = c.u32()?;
    let width = c.u32()?;
    let channels = c.u8()?;
    let sample_rate = c.u32()?;
    let seed = c.u64()?;
    let prior_hash: [u8; 32] = c.take(32)?.try_into().expect("32 bytes");
    let id_len = usize::from(c.u8()?);
    let id_bytes = c.take(id_len)?;
    let count = c.u32()?;
    if count > MAX_BLOCKS {
        return Err(invalid("block_count", format!("{count} exceeds 2^24")));
    }
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
    if flags != 0 {
        return Err(invalid(
            "flags",
            format!("{flags:#04x}; no flags are defined in version 1"),
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
            prior_hash: [7; 32],
            prior_id: "thumbnail-q2".into(),
        }
    }

    #[test]
    fn round_trip() {
        let idx = vec![0, 1, 65535, 1234, 42];
        let data = pack(&header(), &idx).unwrap();
        assert_eq!(data.len(), 62 + 12 + 4 + 10 + 4);
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
