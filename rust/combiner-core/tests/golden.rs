//! Golden vectors in tests/vectors/: what every platform and every future build must reproduce
//! bit for bit. The same files are checked from Python in tests/test_golden.py. candidates.json
//! and search.json pin the ChaCha20 generator and search (versions 1 and 2), candidates_v3.json
//! and search_v3.json the Philox generator and the binary32 search (version 3).

use std::path::PathBuf;

use combiner_core::philox::philox4x32_10;
use combiner_core::rng::WordStream;
use combiner_core::sampler::Generator;
use combiner_core::sampler::{candidate_normals, candidate_normals32};
use combiner_core::search::{Block, Pruning, decode_block, encode_block, encode_block_pruned};
use combiner_core::shuffle::permutation;
use rand_core::Rng;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| f64::from_be_bytes(hex(h.as_str().unwrap()).try_into().unwrap()))
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| f32::from_be_bytes(hex(h.as_str().unwrap()).try_into().unwrap()))
        .collect()
}

fn u64_str(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn chacha20_matches_rfc8439() {
    for case in load("chacha20_rfc8439.json")["cases"].as_array().unwrap() {
        let key: [u8; 32] = hex(case["key"].as_str().unwrap()).try_into().unwrap();
        let nonce = hex(case["nonce"].as_str().unwrap());
        let counter = case["counter"].as_u64().unwrap();
        let high = u64::from(u32::from_le_bytes(nonce[0..4].try_into().unwrap()));
        let stream = u64::from_le_bytes(nonce[4..12].try_into().unwrap());
        let mut s = WordStream::from_key(key, stream, 0);
        s.rng_mut()
            .set_word_pos(u128::from(counter | (high << 32)) * 16);
        let mut block = [0u8; 64];
        s.rng_mut().fill_bytes(&mut block);
        assert_eq!(
            block.to_vec(),
            hex(case["keystream"].as_str().unwrap()),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn candidate_normals_and_samples_are_bit_exact() {
    for case in load("candidates.json")["cases"].as_array().unwrap() {
        let (seed, block) = (u64_str(&case["seed"]), u64_str(&case["block_id"]));
        let (index, dim) = (
            case["index"].as_u64().unwrap(),
            case["dim"].as_u64().unwrap() as usize,
        );
        let z = candidate_normals(seed, block, dim, index);
        assert_eq!(
            bits64(&z),
            bits64(&f64s(&case["normals_f64_be_hex"])),
            "{case}"
        );
        let (m, s) = (
            f32s(&case["prior_mean_f32_be_hex"]),
            f32s(&case["prior_std_f32_be_hex"]),
        );
        let sample = decode_block(&m, &s, seed, block, index, 20, Generator::ChaCha20).unwrap();
        assert_eq!(
            bits32(&sample),
            bits32(&f32s(&case["sample_f32_be_hex"])),
            "{case}"
        );
    }
}

#[test]
fn search_selects_the_recorded_indices() {
    for case in load("search.json")["cases"].as_array().unwrap() {
        let (mu_q, sigma_q) = (f32s(&case["mu_q"]), f32s(&case["sigma_q"]));
        let (mu_p, sigma_p) = (f32s(&case["mu_p"]), f32s(&case["sigma_p"]));
        let block = Block {
            mu_q: &mu_q,
            sigma_q: &sigma_q,
            mu_p: &mu_p,
            sigma_p: &sigma_p,
        };
        let (seed, id) = (u64_str(&case["seed"]), u64_str(&case["block_id"]));
        let kappa = case["kappa"].as_u64().unwrap() as u32;
        for early in [false, true] {
            let enc = encode_block(&block, seed, id, kappa, early, Generator::ChaCha20).unwrap();
            assert_eq!(
                u64::from(enc.index),
                case["index"].as_u64().unwrap(),
                "early={early}"
            );
            assert_eq!(
                bits32(&enc.sample),
                bits32(&f32s(&case["sample_f32_be_hex"]))
            );
        }
    }
}

#[test]
fn permutation_matches_the_recorded_vectors() {
    for case in load("permutation.json")["cases"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap();
        let perm = permutation(u64_str(&case["seed"]), n).unwrap();
        let first: Vec<u32> = case["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(&perm[..first.len()], &first[..], "n = {n}");
        let sum = perm.iter().enumerate().fold(0u64, |acc, (t, &v)| {
            acc.wrapping_add((t as u64 + 1).wrapping_mul(u64::from(v)))
        });
        assert_eq!(sum, u64_str(&case["weighted_sum"]), "n = {n}");
    }
}

fn u32_hex(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| u32::from_str_radix(h.as_str().unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn philox_matches_the_random123_known_answers() {
    for case in load("candidates_v3.json")["philox4x32_10"]
        .as_array()
        .unwrap()
    {
        let counter: [u32; 4] = u32_hex(&case["counter"]).try_into().unwrap();
        let key: [u32; 2] = u32_hex(&case["key"]).try_into().unwrap();
        assert_eq!(
            philox4x32_10(counter, key).to_vec(),
            u32_hex(&case["output"])
        );
    }
}

#[test]
fn version_3_candidate_normals_and_samples_are_bit_exact() {
    for case in load("candidates_v3.json")["cases"].as_array().unwrap() {
        let (seed, block) = (u64_str(&case["seed"]), u64_str(&case["block_id"]));
        let (index, dim) = (
            case["index"].as_u64().unwrap(),
            case["dim"].as_u64().unwrap() as usize,
        );
        let z = candidate_normals32(seed, block, dim, index as u32);
        assert_eq!(
            bits32(&z),
            bits32(&f32s(&case["normals_f32_be_hex"])),
            "{case}"
        );
        let (m, s) = (
            f32s(&case["prior_mean_f32_be_hex"]),
            f32s(&case["prior_std_f32_be_hex"]),
        );
        let sample = decode_block(&m, &s, seed, block, index, 20, Generator::Philox).unwrap();
        assert_eq!(
            bits32(&sample),
            bits32(&f32s(&case["sample_f32_be_hex"])),
            "{case}"
        );
    }
}

#[test]
fn version_3_search_selects_the_recorded_indices() {
    for case in load("search_v3.json")["cases"].as_array().unwrap() {
        let (mu_q, sigma_q) = (f32s(&case["mu_q"]), f32s(&case["sigma_q"]));
        let (mu_p, sigma_p) = (f32s(&case["mu_p"]), f32s(&case["sigma_p"]));
        let block = Block {
            mu_q: &mu_q,
            sigma_q: &sigma_q,
            mu_p: &mu_p,
            sigma_p: &sigma_p,
        };
        let (seed, id) = (u64_str(&case["seed"]), u64_str(&case["block_id"]));
        let kappa = case["kappa"].as_u64().unwrap() as u32;
        for pruning in [Pruning::Exhaustive, Pruning::Stop, Pruning::StopAndSkip] {
            let enc =
                encode_block_pruned(&block, seed, id, kappa, Generator::Philox, pruning).unwrap();
            assert_eq!(
                u64::from(enc.index),
                case["index"].as_u64().unwrap(),
                "{pruning:?}"
            );
            assert_eq!(
                bits32(&enc.sample),
                bits32(&f32s(&case["sample_f32_be_hex"]))
            );
        }
    }
}
