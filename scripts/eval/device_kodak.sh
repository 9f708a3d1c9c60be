#!/usr/bin/env bash
# Kodak coding jobs on a lent GPU machine: one (image, level) job per process with the shipped
# photo priors, several processes sharing the GPU, in the order of JOBS, until a deadline. A job
# stopped by the deadline leaves no row; finished ones are whole.
#   JOBS="kodim01:0 kodim02:0 ..."   (default: levels 0, 2 and 3 of kodim01-20, the levels that
#   results/kodak/ lacks)
# COMBINER_DATA is the data on that machine (default .devdata, holding kodak/: a copy of
# ../shared/data/kodak); the wheels travel in .whl/. One tarball of the eval folders and logs
# lands in $OUT. SMOKE=1 runs one tiny job on the CPU.
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
DATA=$(realpath "${COMBINER_DATA:-.devdata}")
BUDGET=${BUDGET:-330}           # seconds from now until every job is stopped
PARALLEL=${PARALLEL:-6}
W=/tmp/kodak
rm -rf "$W"; mkdir -p "$OUT" "$W/in" "$W/out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
END=$(( $(date +%s) + BUDGET ))
default_jobs() {
    for q in 0 2 3; do for i in $(seq -w 1 20); do echo "kodim$i:$q"; done; done
}
EXTRA=(--baselines "")
if [ -z "${SMOKE:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    JOBS=${JOBS:-$(default_jobs)}
else
    export PYTHONPATH=python
    JOBS=${JOBS:-kodim06:0}
    EXTRA+=(--steps 5 --refine-steps 0 --device cpu)
fi
export DATA W END
run_job() {  # kodimNN:L -> $W/out/kodimNN-qL (combiner eval of that one image at that level)
    local name=${1%:*} level=${1#*:} left=$(( END - $(date +%s) ))
    [ "$left" -gt 10 ] || return 0
    mkdir -p "$W/in/$name" && ln -sf "$DATA/kodak/$name.png" "$W/in/$name/"
    local t0=$(date +%s)
    timeout "$left" python3 -c "from combiner.cli import main; main()" -q eval "$W/in/$name" \
        --quality "$level" -o "$W/out/$name-q$level" "${@:2}" >"$W/out/$name-q$level.log" 2>&1
    echo "$1 rc=$? $(( $(date +%s) - t0 ))s"
}
export -f run_job
printf '%s\n' $JOBS | xargs -P "$PARALLEL" -I{} bash -c 'run_job "$@"' _ {} "${EXTRA[@]}" | tee "$W/jobs.log"
cat "$W"/out/*/rows.jsonl 2>/dev/null | wc -l
tar czf "$OUT/kodak.tar.gz" -C "$W" out jobs.log && ls -la "$OUT"
