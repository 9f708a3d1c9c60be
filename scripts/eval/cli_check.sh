#!/usr/bin/env bash
# The "fresh install" check of the shipped defaults: `combiner encode` with no prior or quality
# flag on a Kodak image and a LibriSpeech FLAC clip, then `combiner decode`, then an independent
# PSNR (numpy on the files as written) beside the one the encoder reported. Peak memory comes
# from GNU time. Usage: scripts/eval/cli_check.sh OUT_DIR [COMBINER] (COMBINER: the command to test,
# e.g. the one of a fresh virtual environment; default: `combiner` on the PATH). The inputs are
# kodak/kodim01.png and a LibriSpeech clip under $COMBINER_DATA (default ../shared/data).
set -euo pipefail
OUT=${1:?usage: scripts/eval/cli_check.sh OUT_DIR [COMBINER]}
COMBINER=${2:-combiner}
DATA=${COMBINER_DATA:-../shared/data}   # the evaluation data
PY=$(dirname "$(command -v "$COMBINER")")/python
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
IMAGE=$DATA/kodak/kodim01.png
CLIP=$DATA/audio/librispeech_test-other/2414-128291-0008.flac

run() {  # run NAME CMD...: stdout+stderr to NAME.log, GNU time's report to NAME.time
  local name=$1; shift
  /usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.log" 2>&1
  # Keep what a terminal would show last on each line: the progress bars redraw with \r.
  sed -i 's/.*\r//' "$OUT/$name.log"
  grep -E "Elapsed|Maximum resident" "$OUT/$name.time" | sed "s/^/$name: /"
}

run encode-image "$COMBINER" encode "$IMAGE" "$OUT/kodim01.cmb"
run decode-image "$COMBINER" decode "$OUT/kodim01.cmb" "$OUT/kodim01.png"
run encode-audio "$COMBINER" encode "$CLIP" "$OUT/clip.cmb"
run decode-audio "$COMBINER" decode "$OUT/clip.cmb" "$OUT/clip.flac"
"$COMBINER" info "$OUT/kodim01.cmb" >"$OUT/info-image.txt"
"$COMBINER" info "$OUT/clip.cmb" >"$OUT/info-audio.txt"

"$PY" - "$IMAGE" "$OUT/kodim01.png" "$CLIP" "$OUT/clip.flac" "$OUT" <<'EOF'
import json, math, sys
from pathlib import Path
import numpy as np, soundfile as sf
from PIL import Image

image, image_out, clip, clip_out, out = sys.argv[1:]
out = Path(out)

def psnr(a, b, peak):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(peak * peak / mse)

a, b = np.asarray(Image.open(image).convert("RGB")), np.asarray(Image.open(image_out))
x, rate = sf.read(clip, dtype="int16")
y, rate_out = sf.read(clip_out, dtype="int16")
result = dict(
    image=dict(source=image, shape_in=list(a.shape), shape_out=list(b.shape),
               bytes=(out / "kodim01.cmb").stat().st_size,
               bpp=8 * (out / "kodim01.cmb").stat().st_size / (a.shape[0] * a.shape[1]),
               psnr_measured=psnr(a, b, 255.0), encoder_log=(out / "encode-image.log").read_text()),
    audio=dict(source=clip, samples_in=len(x), samples_out=len(y), rate_in=rate, rate_out=rate_out,
               bytes=(out / "clip.cmb").stat().st_size,
               kbps=8 * (out / "clip.cmb").stat().st_size / (len(x) / rate) / 1000,
               # combiner's convention (see combiner.evaluate): the waveform mapped to [0, 1], peak 1,
               # which is 6.02 dB above the PSNR of the int16 samples with peak 32768
               psnr_measured=psnr((x / 32768 + 1) / 2, (y / 32768 + 1) / 2, 1.0),
               psnr_int16_peak_32768=psnr(x, y, 32768.0), encoder_log=(out / "encode-audio.log").read_text()),
)
(out / "check.json").write_text(json.dumps(result, indent=1) + "\n")
for k, v in result.items():
    print(k, {n: v[n] for n in v if n != "encoder_log"})
EOF
