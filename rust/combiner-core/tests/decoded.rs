//! The committed bitstreams of `tests/data` decode to the outputs pinned in
//! `tests/vectors/decoded.json` (docs/format.md section 8), with one and two threads and with
//! every instruction-set level: no Python involved.

use std::path::PathBuf;

use combiner_core::decode::{self, Samples};
use combiner_core::kernels::Isa;
use combiner_core::prior::Prior;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sha256(samples: &Samples) -> String {
    let bytes: Vec<u8> = match samples {
        Samples::Image(v) => v.clone(),
        Samples::Audio(v) => v.iter().flat_map(|s| s.to_le_bytes()).collect(),
    };
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn committed_bitstreams_decode_to_the_pinned_outputs() {
    let text = std::fs::read_to_string(root().join("tests/vectors/decoded.json")).unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    let mut isas = vec![Isa::Portable];
    if Isa::avx2_available() {
        isas.push(Isa::Avx2);
    }
    for case in cases {
        let data = std::fs::read(root().join(case["bitstream"].as_str().unwrap())).unwrap();
        let prior = Prior::from_bytes(
            &std::fs::read(root().join(case["prior"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for &isa in &isas {
                let (_, samples) = pool.install(|| decode::decode(&data, &prior, isa)).unwrap();
                assert_eq!(
                    sha256(&samples),
                    case["sha256"].as_str().unwrap(),
                    "{} with {threads} threads, {isa:?}",
                    case["bitstream"]
                );
            }
        }
    }
}

#[test]
fn a_bitstream_with_another_prior_is_refused_before_decoding() {
    let data =
        std::fs::read(root().join("tests/data/cifar10-test-00000.thumbnail-q1.cmb")).unwrap();
    let other = Prior::from_bytes(
        &std::fs::read(root().join("python/combiner/priors/thumbnail-q2.safetensors")).unwrap(),
    )
    .unwrap();
    let err = decode::decode(&data, &other, Isa::Portable).unwrap_err();
    assert!(
        matches!(err, decode::DecodeError::PriorMismatch(_)),
        "{err}"
    );
}

#[test]
fn every_truncated_or_corrupted_prior_file_is_a_typed_error() {
    let good = std::fs::read(root().join("python/combiner/priors/photo-q1.safetensors")).unwrap();
    assert!(Prior::from_bytes(&good).is_ok());
    for cut in (0..good.len()).step_by(97) {
        assert!(Prior::from_bytes(&good[..cut]).is_err());
    }
    let mut x: u32 = 12345;
    for _ in 0..2000 {
        let mut bad = good.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = x as usize % bad.len();
            bad[at] ^= 1 << (x % 8);
        }
        let _ = Prior::from_bytes(&bad); // any result but a panic
    }
}
