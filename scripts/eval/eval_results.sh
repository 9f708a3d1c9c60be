#!/usr/bin/env bash
# Regenerates results/kodak, results/cifar10 and results/librispeech: `combiner eval` of the
# shipped defaults (no prior flag: each level's shipped prior and encoder settings) and of the
# baselines, merged into one folder per dataset, then (Kodak) every baseline re-coded at
# combiner's own file size, image by image. Run from the repository root after
# `pip install ".[encode]"`:
#
#   bash scripts/eval/eval_results.sh [kodak] [cifar10] [librispeech]     (default: all three)
#
# COMBINER_DATA is the evaluation data (default ../shared/data): kodak/ (kodim01-20),
# cifar10/test/ (the first 100 images are used) and audio/librispeech_test-other/ (the first 3 s
# of each clip). Scratch folders go to $TMPDIR (default /tmp).
#
# Each run takes hours on a CPU: Kodak 2-4.5 minutes per image and level on two cores (q0-q3;
# the committed runs passed --threads 2, without which the encoder uses every free core),
# CIFAR-10 about 10 s per image and level, speech 5-9 minutes per clip and level. Batches are
# as in the committed runs: one Kodak image per batch (--max-patches 96), 100 CIFAR-10 images
# per level, two 3 s clips per batch (--max-patches 120). To use several cores, run the
# combiner line on parts of the items (folders of links) in parallel and pass all their folders
# to merge_runs.py. With a CUDA GPU and CuPy the search runs on the GPU (--search auto) and
# picks the same indices for the same posteriors; fitting on a GPU rounds differently from the
# CPU, so PSNRs differ slightly.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${COMBINER_DATA:-../shared/data}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/combiner-eval.XXXXXX")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
[ $# -gt 0 ] || set -- kodak cifar10 librispeech

for dataset in "$@"; do
    case $dataset in
    kodak)  # kodim01-20 at photo-q0..q3; JPEG is the BD anchor
        combiner -q eval "$DATA/kodak" --no-combiner -o results/kodak --reference results/reference/kodak.json
        combiner -q eval "$DATA/kodak" --quality 0 1 2 3 --baselines "" --max-patches 96 -o "$TMP/kodak"
        python scripts/eval/merge_runs.py results/kodak "$TMP/kodak"
        python scripts/eval/matched_rates.py results/kodak --data "$DATA/kodak"
        ;;
    cifar10)  # the first 100 test images at thumbnail-q0..q3; WebP is the BD anchor (JPEG's
              # smallest 32 x 32 file is already 5 bpp and overlaps nothing)
        combiner -q eval "$DATA/cifar10/test" --limit 100 --no-combiner --anchor webp -o results/cifar10 \
            --reference results/reference/cifar10.json
        combiner -q eval "$DATA/cifar10/test" --limit 100 --quality 0 1 2 3 --baselines "" -o "$TMP/cifar10"
        python scripts/eval/merge_runs.py results/cifar10 "$TMP/cifar10"
        ;;
    librispeech)  # the first 3 s of the 10 test-other clips at speech-q0..q3; Opus is the BD
                  # anchor (MP3's sweep starts at 24 kbit/s)
        combiner -q eval "$DATA/audio/librispeech_test-other" --seconds 3 --no-combiner --anchor opus \
            -o results/librispeech --reference results/reference/librispeech.json
        combiner -q eval "$DATA/audio/librispeech_test-other" --seconds 3 --quality 0 1 2 3 --baselines "" \
            --max-patches 120 -o "$TMP/librispeech"
        python scripts/eval/merge_runs.py results/librispeech "$TMP/librispeech"
        ;;
    *) echo "unknown dataset: $dataset (kodak, cifar10 or librispeech)" >&2; exit 2 ;;
    esac
done
python scripts/results_tables.py   # the README's results tables from the new summaries
