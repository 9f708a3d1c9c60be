#!/usr/bin/env bash
# The runs behind results/{kodak,kodak-baselines,cifar10,librispeech}: `combiner eval` on the
# shared evaluation data, one torch thread and one search thread per run (two runs at a time on
# the 2-core development machine). Run from the repository root after `pip install .`.
set -euo pipefail
DATA=${DATA:-../shared/data}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}

# Session 4 coded the rest on a lent GPU machine with benches/device_run.sh (Kodak kodim06-20 at
# q0/q1, photo-q2, CIFAR q3, speech q0-q3 with the current defaults) and merged the folders into
# these with benches/merge_runs.py; results/README.md says which rows came from where.
#
# Kodak: every baseline on kodim01-20 (seconds), combiner on kodim01-05 here: one 768 x 512
# image costs about 20 minutes per quality level on one CPU core. The committed run split the
# five images over processes and merged them (the later ones on folders of links to
# kodim03-04 and kodim05, one process per level for kodim05):
#   combiner eval "$DATA/kodak" --limit 2 --quality 0 1 -o results/kodak ... --resume
#   combiner eval kodim03-04/ --quality 0 1 -o OTHER ... ; python benches/merge_runs.py results/kodak OTHER
# Each image is its own batch, so this one command codes the same batches:
combiner -q eval "$DATA/kodak" --no-combiner -o results/kodak-baselines --reference results/reference/kodak.json
combiner eval "$DATA/kodak" --limit 5 --quality 0 1 -o results/kodak --reference results/reference/kodak.json
python benches/matched_rates.py results/kodak --data "$DATA/kodak"

# CIFAR-10: the first 100 test images, all four thumbnail levels (fitted together in one batch).
# (The committed run was stopped during q3; its summary was rebuilt with WebP as the BD anchor:
# set "anchor": "webp" in summary.json, then python benches/rd_tables.py --rebuild results/cifar10.)
combiner eval "$DATA/cifar10/test" --limit 100 --quality 0 1 2 3 --anchor webp -o results/cifar10 --reference results/reference/cifar10.json

# LibriSpeech test-other: the first 3 s of each of the 10 clips, all four speech levels.
# (The committed run coded q0 as one batch, then was resumed with --resume --max-patches 30, one
# clip per batch, and stopped after q2.)
# It ran with the speech defaults of the time (300 fitting steps, 3 refinement steps per round);
# --steps 300 --refine-steps 3 repeats it. Without them, the current defaults (1,200 + 10) apply.
combiner eval "$DATA/audio/librispeech_test-other" --seconds 3 --quality 0 1 2 3 --steps 300 --refine-steps 3 -o results/librispeech --reference results/reference/librispeech.json
