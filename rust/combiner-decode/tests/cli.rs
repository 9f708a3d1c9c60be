//! The `combiner-decode` program on committed bitstreams: the PNG and WAV it writes hold exactly
//! the golden samples of `tests/vectors/decoded.json`, and it refuses to overwrite an input.

use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden(bitstream: &str) -> (String, String) {
    let text = std::fs::read_to_string(root().join("tests/vectors/decoded.json")).unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["bitstream"] == bitstream)
        .unwrap();
    (
        case["prior"].as_str().unwrap().into(),
        case["sha256"].as_str().unwrap().into(),
    )
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run(args: &[&PathBuf]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_combiner-decode"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn writes_the_golden_pixels_as_png() {
    let stream = "tests/data/kodim05-crop96x64.photo-q1.spread.cmb";
    let (prior, sha) = golden(stream);
    let out = std::env::temp_dir().join(format!("combiner-decode-{}.png", std::process::id()));
    let result = run(&[&root().join(stream), &root().join(prior), &out]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (96, 64));
    assert_eq!(hex(&pixels[..info.buffer_size()]), sha);
    std::fs::remove_file(out).unwrap();
}

#[test]
fn writes_the_golden_samples_as_wav() {
    let stream = "tests/data/2414-128291-0008-1.00s-1.25s.speech-q1.spread.cmb";
    let (prior, sha) = golden(stream);
    let out = std::env::temp_dir().join(format!("combiner-decode-{}.wav", std::process::id()));
    let result = run(&[&root().join(stream), &root().join(prior), &out]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mut reader = hound::WavReader::open(&out).unwrap();
    assert_eq!(reader.spec().sample_rate, 16000);
    let bytes: Vec<u8> = reader
        .samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect();
    assert_eq!(hex(&bytes), sha);
    std::fs::remove_file(out).unwrap();
}

#[test]
fn refuses_bad_requests_with_one_line_and_leaves_the_inputs_alone() {
    let dir = std::env::temp_dir().join(format!("combiner-decode-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stream = root().join("tests/data/cifar10-test-00000.thumbnail-q1.cmb");
    let (prior, _) = golden("tests/data/cifar10-test-00000.thumbnail-q1.cmb");
    let copy = dir.join("x.png"); // a bitstream under a PNG name: the output would overwrite it
    std::fs::copy(&stream, &copy).unwrap();
    let result = run(&[&copy, &root().join(&prior), &copy]);
    assert!(!result.status.success());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&stream).unwrap()
    );
    let wrong_prior = root().join("python/combiner/priors/thumbnail-q2.safetensors");
    let out = dir.join("y.png");
    let result = run(&[&stream, &wrong_prior, &out]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success() && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!out.exists(), "no output after a failure");
    let result = run(&[&stream, &root().join(prior), &dir.join("y.ogg")]);
    assert!(!result.status.success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn writes_the_golden_pixels_of_a_version_3_stream() {
    let stream = "tests/data/cifar10-test-00000.thumbnail-q1.v3.cmb";
    let data = std::fs::read(root().join(stream)).unwrap();
    assert_eq!(data[3], 3, "a version-3 bitstream");
    let (prior, sha) = golden(stream);
    let out = std::env::temp_dir().join(format!("combiner-decode-v3-{}.png", std::process::id()));
    let result = run(&[&root().join(stream), &root().join(prior), &out]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (32, 32));
    assert_eq!(hex(&pixels[..info.buffer_size()]), sha);
    std::fs::remove_file(out).unwrap();
}
