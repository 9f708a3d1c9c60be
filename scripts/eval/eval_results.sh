#!/usr/bin/env bash
# The runs behind results/{kodak,kodak-baselines,cifar10,librispeech,...}: `combiner eval` on the
# shared evaluation data. Run from the repository root after `pip install .`. On a CPU, one torch
# thread and one search thread per run; with a CUDA GPU and CuPy the search runs on the GPU
# (`--search auto`) and gives the same bitstreams for the same posteriors.
#
# The committed folders were not made by these commands in one go: they were split over
# processes and machines (the 2-core development CPU in sessions 2-4, a lent H200 in session 4
# via benches/device_run.sh) and merged with benches/merge_runs.py; results/README.md says which
# rows came from where, and each summary.json keeps every command and machine. CIFAR-10 and
# speech code all items of a level in one batch, as the committed runs did.
set -euo pipefail
DATA=${DATA:-../shared/data}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}

# Kodak: every baseline on kodim01-20 (seconds); combiner on kodim01-20 at photo-q0..q2; then the
# baselines at combiner's exact file sizes. The committed results/kodak was coded with the first
# (32 x 32, now retired) photo priors, one image per batch, about 20 minutes per image and level
# on one CPU core and 30-45 s on the H200; today this command codes with the shipped 64 x 64
# priors, five images per batch (512 patches), and writes other figures.
combiner -q eval "$DATA/kodak" --no-combiner -o results/kodak-baselines --reference results/reference/kodak.json
combiner eval "$DATA/kodak" --quality 0 1 2 -o results/kodak --reference results/reference/kodak.json
python benches/matched_rates.py results/kodak --data "$DATA/kodak"

# Kodak with the 64 x 64 photo priors (session 5, kodak-photo64/): kodim01-10 at photo-q1 on the
# CPU, two processes of five images (folders of links), merged with the baselines of the same 10.
# combiner eval KODAK_ODD --quality 1 --baselines "" -o /tmp/a   (kodim01, 03, 05, 07, 09)
# combiner eval KODAK_EVEN --quality 1 --baselines "" -o /tmp/b  (kodim02, 04, 06, 08, 10)
# combiner -q eval KODAK_1_10 --no-combiner -o results/kodak-photo64 --reference results/reference/kodak.json
# python benches/merge_runs.py results/kodak-photo64 /tmp/a /tmp/b
# python benches/matched_rates.py results/kodak-photo64 --data "$DATA/kodak"

# Kodak with the rate-targeted photo priors (session 6, kodak-rate-targeted/): kodim01-10 at
# photo-q1 and kodim01, 03, 05, 07, 09 at photo-q0 on the CPU, one process per five images.
# combiner eval KODAK_ODD --quality 1 --baselines "" -o /tmp/a
# combiner eval KODAK_EVEN --quality 1 --baselines "" -o /tmp/b
# combiner -q eval KODAK_1_10 --no-combiner -o results/kodak-rate-targeted --reference results/reference/kodak.json
# python benches/merge_runs.py results/kodak-rate-targeted /tmp/a /tmp/b
# python benches/matched_rates.py results/kodak-rate-targeted --data "$DATA/kodak"
# combiner eval KODAK_ODD --quality 0 --baselines "" -o /tmp/c
# combiner -q eval KODAK_ODD --no-combiner -o results/kodak-rate-targeted/q0 --reference results/reference/kodak.json
# python benches/merge_runs.py results/kodak-rate-targeted/q0 /tmp/c
# python benches/matched_rates.py results/kodak-rate-targeted/q0 --data "$DATA/kodak"

# Kodak with the photo priors with mixing matrices (session 7, kodak-mix/): kodim01-10 at photo-q1
# on the CPU, one process per five images, and the baselines on the same ten images.
# combiner eval KODAK_ODD --quality 1 --baselines "" -o /tmp/s7/q1-odd
# combiner eval KODAK_EVEN --quality 1 --baselines "" -o /tmp/s7/q1-even
# combiner -q eval KODAK_1_10 --no-combiner -o results/kodak-mix --reference results/reference/kodak.json
# python benches/merge_runs.py results/kodak-mix /tmp/s7/q1-odd /tmp/s7/q1-even
# Session 8 added q0, q2 and q3 of kodim01-10 and q1 of kodim11-14 on a lent H200 (one job per
# image and level, six processes sharing the GPU, stopped at a deadline), q1 of kodim15-20 on the
# CPU (two processes of three images) and the baselines of kodim11-20:
# BUDGET=330 PARALLEL=6 bash benches/device_kodak.sh        (on the GPU machine; -> /tmp/kodak/out)
# combiner eval KODAK_15_17_19 --quality 1 --baselines "" -o /tmp/s8/out-k1
# combiner eval KODAK_16_18_20 --quality 1 --baselines "" -o /tmp/s8/out-k2
# combiner -q eval KODAK_11_20 --no-combiner -o /tmp/s8/base11-20 --reference results/reference/kodak.json
# python benches/merge_runs.py results/kodak-mix /tmp/kodak/out/kodim*-q*/ /tmp/s8/base11-20 /tmp/s8/out-k1 /tmp/s8/out-k2
# python benches/matched_rates.py results/kodak-mix --data "$DATA/kodak"

# CIFAR-10: the first 100 test images, all four thumbnail levels (q3 of the committed run came
# from the H200). WebP is the BD anchor: JPEG's smallest 32 x 32 file overlaps nothing.
combiner eval "$DATA/cifar10/test" --limit 100 --quality 0 1 2 3 --anchor webp -o results/cifar10 --reference results/reference/cifar10.json
# The same images with the session-8 thumbnail priors (cifar10-mix/): two processes of two
# levels each on the CPU, the baselines once, merged.
# combiner eval "$DATA/cifar10/test" --limit 100 --quality 0 3 --baselines "" -o /tmp/s8/cifar-a
# combiner eval "$DATA/cifar10/test" --limit 100 --quality 1 2 --baselines "" -o /tmp/s8/cifar-b
# combiner -q eval "$DATA/cifar10/test" --limit 100 --no-combiner --anchor webp -o results/cifar10-mix --reference results/reference/cifar10.json
# python benches/merge_runs.py results/cifar10-mix /tmp/s8/cifar-a /tmp/s8/cifar-b

# LibriSpeech test-other: the first 3 s of each of the 10 clips, all four speech levels with the
# current defaults (the committed combiner rows came from the H200; the baseline rows from the
# session-2 CPU run, whose combiner rows used 300 fitting + 3 refinement steps and were replaced).
combiner eval "$DATA/audio/librispeech_test-other" --seconds 3 --quality 0 1 2 3 -o results/librispeech --reference results/reference/librispeech.json
# The same clips with the session-9 speech priors (librispeech-mix/): q0 and q1 on the CPU, one
# process each, two clips per batch (so that rows land as batches finish), the baselines once,
# merged. The q1 process was stopped at the session's deadline (results/README.md says where).
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 0 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s9/lib_q0
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 1 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s9/lib_q1
# combiner -q eval "$DATA/audio/librispeech_test-other" --no-combiner --seconds 3 -o results/librispeech-mix --reference results/reference/librispeech.json
# python benches/merge_runs.py results/librispeech-mix /tmp/s9/lib_q0 /tmp/s9/lib_q1
# Session 10 finished it: q1 on clips 7-10 (--resume over the six session-9 rows, copied into
# /tmp/s10/lib_q1/rows.jsonl), q2, and q3 in two processes (the second over a folder of links to
# clips 7-10); then the summary's anchor was set to opus and the folder rebuilt
# (combiner.evaluate.rebuild).
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 1 --seconds 3 --baselines "" --max-patches 120 --resume -o /tmp/s10/lib_q1
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 2 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s10/lib_q2
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 3 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s10/lib_q3
# combiner -q eval /tmp/s10/clips_7_10 --quality 3 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s10/lib_q3b
# python benches/merge_runs.py results/librispeech-mix /tmp/s10/lib_q1 /tmp/s10/lib_q2 /tmp/s10/lib_q3 /tmp/s10/lib_q3b

# Session 11, spread blocks (the new photo and speech defaults), on the CPU (results/kodak-spread,
# results/librispeech-spread): kodim01-10 at photo-q1 in two processes of five images (folders
# of links), one image per batch; the baselines of the same 10 images; speech-q0 on the 10 clips.
# combiner -q eval KODAK_ODD --quality 1 --baselines "" --max-patches 96 -o /tmp/s11/kq1_odd
# combiner -q eval KODAK_EVEN --quality 1 --baselines "" --max-patches 96 -o /tmp/s11/kq1_even
# combiner -q eval KODAK_1_10 --no-combiner -o results/kodak-spread --reference results/reference/kodak.json
# python benches/merge_runs.py results/kodak-spread /tmp/s11/kq1_odd /tmp/s11/kq1_even
# python benches/matched_rates.py results/kodak-spread --data "$DATA/kodak"
# combiner -q eval "$DATA/audio/librispeech_test-other" --no-combiner --seconds 3 -o results/librispeech-spread --reference results/reference/librispeech.json
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 0 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s11/lib_q0
# python benches/merge_runs.py results/librispeech-spread /tmp/s11/lib_q0
# combiner -q eval "$DATA/audio/librispeech_test-other" --quality 1 --seconds 3 --limit 4 --baselines "" --max-patches 120 -o /tmp/s11/lib_q1   (rows: results/experiments/speech-q1-spread-4clips.jsonl)
# Session 12: kodim11-20 the same way (two processes of five), merged into the same folder.
# combiner -q eval KODAK_11_20 --no-combiner -o /tmp/s12/kodak-base11 --reference results/reference/kodak.json
# combiner -q eval KODAK_11_19_ODD --quality 1 --baselines "" --max-patches 96 -o /tmp/s12/kq1_odd
# combiner -q eval KODAK_12_20_EVEN --quality 1 --baselines "" --max-patches 96 -o /tmp/s12/kq1_even
# python benches/merge_runs.py results/kodak-spread /tmp/s12/kodak-base11 /tmp/s12/kq1_odd /tmp/s12/kq1_even
# python benches/matched_rates.py results/kodak-spread --data "$DATA/kodak"
# Session 12: speech-q1 on clips 5-10, speech-q2 and q3 on all 10 (folders of links, two processes),
# merged with the session-11 q1 rows (that jsonl, as an eval folder); anchor set to opus, rebuilt.
# combiner -q eval CLIPS_5_7 --quality 1 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s12/lib_q1_a
# combiner -q eval CLIPS_8_10 --quality 1 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s12/lib_q1_b
# combiner -q eval CLIPS_1_5 --quality 2 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s12/lib_q2_a
# combiner -q eval CLIPS_6_10 --quality 2 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s12/lib_q2_b
# combiner -q eval CLIPS_1_5 --quality 3 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s12/lib_q3_a
# combiner -q eval CLIPS_6_10 --quality 3 --seconds 3 --baselines "" --max-patches 120 -o /tmp/s12/lib_q3_b
# python benches/merge_runs.py results/librispeech-spread /tmp/s12/lib_q1_s11 /tmp/s12/lib_q1_a /tmp/s12/lib_q1_b /tmp/s12/lib_q2_a /tmp/s12/lib_q2_b /tmp/s12/lib_q3_a /tmp/s12/lib_q3_b
