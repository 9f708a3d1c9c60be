#!/usr/bin/env bash
# The evaluations a CPU cannot afford, on a lent GPU machine, in parallel until a deadline. First
# the CUDA search is checked against the Rust search and timed (benches/gpu_search_bench.py); the
# evaluations search on the GPU only if it picks the Rust indices. Then, by PLAN:
#   (default)  Kodak kodim06-20 at photo-q0 and q1 (three processes, one image at a time), the 10
#              LibriSpeech test-other clips (first 3 s) at speech-q0..q3, and the first 100
#              CIFAR-10 test images at thumbnail-q3;
#   kodak-q2   photo-q2 on kodim01-20 (four processes);
#   kodak-all  all four photo levels on kodim01-20 (four processes, one image at a time).
# scripts/eval/device_kodak.sh runs one job per (image, level) instead.
# COMBINER_DATA is the data on that machine (default .devdata: a copy of the parts of
# ../shared/data used, in the same layout: kodak/, cifar10/test/, audio/librispeech_test-other/);
# the wheels travel in .whl/. Everything lands in $OUT. SMOKE=1 runs a tiny version on any
# machine (CPU search, 5 fitting steps).
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
DATA=$(realpath "${COMBINER_DATA:-.devdata}")
BUDGET=${BUDGET:-420}           # seconds from now until every evaluation is stopped
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
START=$(date +%s)
END=$((START + BUDGET))
log() { echo "[$(( $(date +%s) - START ))s] $*"; }

if [ -d .whl ] && [ -z "${SMOKE:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
CLI=(python3 -c "from combiner.cli import main; main()")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
nproc

# 1. The CUDA search must give the Rust indices, or the evaluations search on the CPU.
SEARCH=cpu
if [ -z "${SMOKE:-}" ]; then
    python3 -c "from combiner import gpu_search as g; g._module().get_function('score_candidates'); print('kernel compiled')" 2>&1 | tail -5
    python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu_search.py 2>&1 | tail -8
    TESTS_RC=${PIPESTATUS[0]}
    python3 benches/gpu_search_bench.py --json "$OUT/gpu_search_bench.json" 2>&1 | tail -25
    if [ "$TESTS_RC" = 0 ] && grep -q '"same_indices": true' "$OUT/gpu_search_bench.json" 2>/dev/null \
        && python3 -c "from combiner import gpu_search as g; assert g.available()"; then
        SEARCH=gpu
    fi
fi
log "search on: $SEARCH"
EXTRA=(--search "$SEARCH" --baselines "")
[ -n "${SMOKE:-}" ] && EXTRA+=(--steps 5 --refine-steps 0)

left() { echo $(( END - $(date +%s) )); }

kodak_worker() {  # one image per eval folder, so that a stopped run leaves whole images
    local tag=$1; shift
    for name in "$@"; do
        [ "$(left)" -gt 20 ] || break
        mkdir -p "/tmp/in/$name"
        ln -sf "$DATA/kodak/$name.png" "/tmp/in/$name/"
        timeout "$(left)" "${CLI[@]}" eval "/tmp/in/$name" --quality ${KODAK_LEVELS:-0 1} -o "/tmp/o/kodak/$name" \
            "${EXTRA[@]}" >>"/tmp/o/kodak-$tag.log" 2>&1
        log "kodak $name rc=$?"
    done
}

mkdir -p /tmp/o/kodak
if [ -n "${SMOKE:-}" ]; then
    kodak_worker a kodim06 &
elif [ "${PLAN:-}" = kodak-q2 ] || [ "${PLAN:-}" = kodak-all ]; then
    if [ "${PLAN}" = kodak-q2 ]; then export KODAK_LEVELS=2; else export KODAK_LEVELS="0 1 2 3"; fi
    kodak_worker a kodim01 kodim05 kodim09 kodim13 kodim17 &
    kodak_worker b kodim02 kodim06 kodim10 kodim14 kodim18 &
    kodak_worker c kodim03 kodim07 kodim11 kodim15 kodim19 &
    kodak_worker d kodim04 kodim08 kodim12 kodim16 kodim20 &
else
    kodak_worker a kodim06 kodim09 kodim12 kodim15 kodim18 &
    kodak_worker b kodim07 kodim10 kodim13 kodim16 kodim19 &
    kodak_worker c kodim08 kodim11 kodim14 kodim17 kodim20 &
    (timeout "$(left)" "${CLI[@]}" eval "$DATA/audio/librispeech_test-other" --seconds 3 --quality 0 1 2 3 \
        -o /tmp/o/speech "${EXTRA[@]}" >/tmp/o/speech.log 2>&1; log "speech rc=$?") &
    (timeout "$(left)" "${CLI[@]}" eval "$DATA/cifar10/test" --limit 100 --quality 3 \
        -o /tmp/o/cifar-q3 "${EXTRA[@]}" >/tmp/o/cifar.log 2>&1; log "cifar rc=$?") &
fi
while [ -n "$(jobs -r)" ]; do
    sleep 15
    log "$(cat /tmp/o/kodak/*/rows.jsonl 2>/dev/null | wc -l) kodak rows; $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
done
wait

# 2. One folder with the whole images of every Kodak worker.
dirs=(/tmp/o/kodak/*/summary.json)
if [ -e "${dirs[0]}" ]; then
    dirs=("${dirs[@]%/summary.json}")
    mkdir -p /tmp/o/kodak-merged && cp "${dirs[0]}"/* /tmp/o/kodak-merged/
    python3 scripts/eval/merge_runs.py /tmp/o/kodak-merged "${dirs[@]:1}" 2>&1 | tail -3
fi
tar -czf "$OUT/runs.tgz" -C /tmp/o . && ls -la "$OUT"
log done
