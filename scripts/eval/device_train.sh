#!/usr/bin/env bash
# Prior learning on a lent GPU machine, with a budget no 2-core CPU can afford:
#   photo-q0..q3: 40 rounds (400 steps, then 200 per round) on 40 crops of each training photo
#                 (1,200 patches), one process per level;
#   thumbnail:    with the mixing matrices, 30 rounds (300, then 150 steps) on CIFAR-10 train 0-999.
# Every process saves its priors after each round (train_priors.py --checkpoint), and all are
# stopped at a deadline: the file after round r is exactly what --iterations r gives. A CUDA
# check of the encoder (scripts/experiments/cuda_check.py) runs first. COMBINER_DATA is the data
# on that machine (default .devtrain: copies of ../shared/data/train_photos and
# cifar10/train/00000-00999.png, in the same layout); the wheels travel in .whl/; one tarball of
# priors and logs lands in $OUT. SMOKE=1 runs a tiny version on the CPU.
# Prepare the inputs once (ignored by git; 61 MiB with the wheels, under the 64 MiB that travels):
#   mkdir -p .devtrain/cifar10/train && cp -r ../shared/data/train_photos .devtrain/
#   cp ../shared/data/cifar10/train/00[0-9][0-9][0-9].png .devtrain/cifar10/train/
# What its priors gave: results/experiments/README.md, "A GPU-sized learning budget".
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
DATA=$(realpath "${COMBINER_DATA:-.devtrain}")
BUDGET=${BUDGET:-380}           # seconds of learning before every process is stopped
W=/tmp/train
rm -rf "$W"; mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
START=$(date +%s)
log() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$W/device.log"; }

if [ -z "${SMOKE:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
    DEVICE=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$W/device.log"
    python3 scripts/experiments/cuda_check.py "$DATA/train_photos" 2>&1 | tee -a "$W/device.log"
    PHOTO=(--iterations 40 --steps 200 --first-steps 400 --per-file 40)
    THUMB=(--iterations 30 --steps 150 --first-steps 300)
else
    export PYTHONPATH=python
    DEVICE=cpu BUDGET=60
    PHOTO=(--iterations 2 --steps 2 --first-steps 2 --per-file 1)
    THUMB=(--iterations 2 --steps 2 --first-steps 2)
fi
log "learning on $DEVICE for $BUDGET s"
for q in 0 1 2 3; do
    timeout "$BUDGET" python3 training/train_priors.py photo --device "$DEVICE" --threads 2 --data "$DATA" \
        --out "$W/priors" --levels "$q" --checkpoint "${PHOTO[@]}" >"$W/photo-q$q.log" 2>&1 &
done
timeout "$BUDGET" python3 training/train_priors.py thumbnail --device "$DEVICE" --threads 2 --data "$DATA" \
    --out "$W/priors" --mix --checkpoint "${THUMB[@]}" >"$W/thumbnail.log" 2>&1 &
wait
log "learning stopped"
nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null
# Keep every fifth round and the last three of each prior: what comes back is limited in size.
for name in $(ls "$W/priors" | sed -n 's/\.round[0-9]*\.safetensors$//p' | sort -u); do
    ls "$W/priors/$name".round*.safetensors | head -n -3 | grep -v -E 'round[0-9]{2}[05]\.' | xargs -r rm
done
tail -n 3 "$W"/*.log
tar czf "$OUT/train.tar.gz" -C "$W" . && ls -la "$OUT"
