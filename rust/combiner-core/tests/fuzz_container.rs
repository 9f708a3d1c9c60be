//! Property tests and a fuzz campaign for the container parser: no panic, typed errors only,
//! and anything accepted is canonical (re-packs to the same bytes).

use combiner_core::container::{Header, Modality, chacha_version, pack, unpack};
use proptest::prelude::*;

/// A header of version 3 (`philox`) or of the ChaCha20 version that fits `spread`.
fn header(kappa: u32, seed: u64, id: String, audio: bool, spread: bool, philox: bool) -> Header {
    Header {
        modality: if audio {
            Modality::Audio
        } else {
            Modality::Image
        },
        kappa,
        height: if audio { 48_000 } else { 512 },
        width: if audio { 1 } else { 768 },
        channels: if audio { 1 } else { 3 },
        sample_rate: if audio { 16_000 } else { 0 },
        seed,
        prior_hash: [0xA5; 8],
        prior_id: id,
        spread_blocks: spread,
        version: if philox { 3 } else { chacha_version(spread) },
    }
}

fn check_hostile(data: &[u8]) {
    if let Ok((h, idx)) = unpack(data) {
        assert_eq!(
            pack(&h, &idx).unwrap(),
            data,
            "accepted input must be canonical"
        );
    }
}

fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        1u32..=20,
        any::<u64>(),
        "[a-z0-9._-]{0,64}",
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0usize..200,
    )
        .prop_flat_map(|(kappa, seed, id, audio, spread, philox, n)| {
            let max = (1u64 << kappa) - 1;
            proptest::collection::vec(0..=max as u32, n).prop_map(move |idx| {
                pack(
                    &header(kappa, seed, id.clone(), audio, spread, philox),
                    &idx,
                )
                .unwrap()
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(kappa in 1u32..=20, seed: u64, id in "[A-Za-z0-9._-]{0,64}", audio: bool,
                  spread: bool, philox: bool, raw in proptest::collection::vec(any::<u32>(), 0..300)) {
        let idx: Vec<u32> = raw.iter().map(|v| v & ((1u32 << kappa) - 1) ).collect();
        let h = header(kappa, seed, id, audio, spread, philox);
        let data = pack(&h, &idx).unwrap();
        prop_assert_eq!(unpack(&data).unwrap(), (h, idx));
    }
}

proptest! {
    // 20,000 mutated streams (bit flips, overwrites, truncations, insertions) ...
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_streams_never_panic(stream in arb_stream(), pos: usize, byte: u8, op in 0u8..5, cut: usize) {
        let mut data = stream;
        let p = pos % data.len();
        match op {
            0 => data[p] ^= 1 << (byte % 8),
            1 => data[p] = byte,
            2 => data.truncate(cut % data.len()),
            3 => data.insert(p, byte),
            _ => {
                // Overwrite a header or payload byte and re-sign, to reach the field checks.
                let body = data.len() - 4;
                data[p % body] = byte;
                let crc = crc32fast::hash(&data[..body]);
                data[body..].copy_from_slice(&crc.to_le_bytes());
            }
        }
        check_hostile(&data);
    }

    // ... and 20,000 arbitrary byte strings, half of them behind a valid magic and version.
    #[test]
    fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..400),
                                   prefix: bool, version in 1u8..=4) {
        if prefix {
            data.splice(0..0, [b'C', b'M', b'B', version]);
        }
        check_hostile(&data);
    }
}
