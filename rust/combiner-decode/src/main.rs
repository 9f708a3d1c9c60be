//! `combiner-decode INPUT.cmb PRIOR.safetensors OUTPUT.(png|wav)`: the reference decoder as a
//! program, built on `combiner-core` alone. Images are written as 8-bit PNG, audio as 16-bit
//! mono WAV, exactly the samples of docs/format.md section 7.5. The output is written to a
//! temporary file beside it and renamed into place, so a failure never leaves half a file, and
//! it may not be one of the inputs.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use combiner_core::container::Header;
use combiner_core::decode::{self, Samples};
use combiner_core::kernels::Isa;
use combiner_core::prior::{MAX_PRIOR_BYTES, Prior};

const USAGE: &str = "usage: combiner-decode INPUT.cmb PRIOR.safetensors OUTPUT.png|OUTPUT.wav";
/// A bitstream is at most a few bytes per block of 2^24 blocks.
const MAX_BITSTREAM_BYTES: u64 = 1 << 26;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(
        Path::new(&args[0]),
        Path::new(&args[1]),
        Path::new(&args[2]),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("combiner-decode: error: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, prior_path: &Path, output: &Path) -> Result<(), String> {
    let kind = OutputKind::of(output)?;
    for source in [input, prior_path] {
        if same_file(source, output) {
            return Err(format!("{} would overwrite an input", output.display()));
        }
    }
    let data = read_bounded(input, MAX_BITSTREAM_BYTES)?;
    let prior_bytes = read_bounded(prior_path, MAX_PRIOR_BYTES as u64)?;
    let prior = Prior::from_bytes(&prior_bytes).map_err(|e| e.to_string())?;
    let (header, samples) =
        decode::decode(&data, &prior, Isa::detect()).map_err(|e| e.to_string())?;
    let temporary = temporary_path(output);
    let written = match (&samples, kind) {
        (Samples::Image(pixels), OutputKind::Png) => write_png(&temporary, &header, pixels),
        (Samples::Audio(clip), OutputKind::Wav) => write_wav(&temporary, &header, clip),
        _ => Err(format!(
            "{} does not suit a decoded {} (images: .png, audio: .wav)",
            output.display(),
            header.modality.name()
        )),
    };
    let finished = written.and_then(|()| {
        fs::rename(&temporary, output).map_err(|e| format!("{}: {e}", output.display()))
    });
    if finished.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    finished
}

#[derive(Clone, Copy)]
enum OutputKind {
    Png,
    Wav,
}

impl OutputKind {
    fn of(path: &Path) -> Result<OutputKind, String> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(OutputKind::Png),
            Some("wav") => Ok(OutputKind::Wav),
            _ => Err(format!(
                "{}: write .png (images) or .wav (audio)",
                path.display()
            )),
        }
    }
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let size = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > limit {
        return Err(format!(
            "{}: {size} bytes is more than this input can be",
            path.display()
        ));
    }
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn temporary_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

fn write_png(path: &Path, header: &Header, pixels: &[u8]) -> Result<(), String> {
    let color = match header.channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    };
    let file = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), header.width, header.height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

fn write_wav(path: &Path, header: &Header, clip: &[i16]) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: header.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(|e| e.to_string())?;
    for &s in clip {
        writer.write_sample(s).map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())
}
