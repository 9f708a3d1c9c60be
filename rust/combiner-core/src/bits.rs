//! Fixed-width bit packing, most significant bit first (the first index occupies the top bits of
//! the first byte). The last byte is padded with zero bits.

/// Appends values of 1..=32 bits.
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    pending: u32,
}

impl BitWriter {
    pub fn with_capacity_bits(bits: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bits.div_ceil(8)),
            acc: 0,
            pending: 0,
        }
    }

    /// Append the low `width` bits of `value` (the caller guarantees `value < 2^width`).
    pub fn write(&mut self, value: u32, width: u32) {
        debug_assert!((1..=32).contains(&width));
        debug_assert!(width == 32 || value >> width == 0);
        self.acc = (self.acc << width) | u64::from(value);
        self.pending += width;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u64 << self.pending) - 1;
    }

    /// The packed bytes, the final partial byte padded with zeros.
    pub fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.bytes.push((self.acc << (8 - self.pending)) as u8);
        }
        self.bytes
    }
}

/// Reads values of 1..=32 bits from a byte slice.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u64,
    pending: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            pos: 0,
            acc: 0,
            pending: 0,
        }
    }

    /// The next `width` bits, or `None` when the input is exhausted.
    pub fn read(&mut self, width: u32) -> Option<u32> {
        debug_assert!((1..=32).contains(&width));
        while self.pending < width {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            self.acc = (self.acc << 8) | u64::from(byte);
            self.pending += 8;
        }
        self.pending -= width;
        let value = (self.acc >> self.pending) as u32 & (((1u64 << width) - 1) as u32);
        self.acc &= (1u64 << self.pending) - 1;
        Some(value)
    }

    /// True when every unread bit (padding and any bytes left) is zero.
    pub fn rest_is_zero(&self) -> bool {
        self.acc == 0 && self.bytes[self.pos..].iter().all(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_widths() {
        for width in 1..=32u32 {
            let mask = if width == 32 {
                u32::MAX
            } else {
                (1 << width) - 1
            };
            let values: Vec<u32> = (0..37u32)
                .map(|i| i.wrapping_mul(2_654_435_761) & mask)
                .collect();
            let mut w = BitWriter::with_capacity_bits(values.len() * width as usize);
            values.iter().for_each(|&v| w.write(v, width));
            let bytes = w.finish();
            assert_eq!(bytes.len(), (values.len() * width as usize).div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &v in &values {
                assert_eq!(r.read(width), Some(v));
            }
            assert!(r.rest_is_zero());
        }
    }

    #[test]
    fn msb_first_layout() {
        let mut w = BitWriter::default();
        w.write(0b101, 3);
        w.write(0b1, 1);
        w.write(0xABC, 12);
        assert_eq!(w.finish(), vec![0b1011_1010, 0b1011_1100]);
    }
}
