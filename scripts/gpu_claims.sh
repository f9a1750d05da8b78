#!/bin/bash
# The claims sweep on the lent GPU machine (one H200 or several), resumable across calls.
#   bash scripts/gpu_claims.sh SECONDS [claims_sweep.py arguments...]
#   GRID=ablations SWEEP=ablations bash scripts/gpu_claims.sh SECONDS --seeds 0 1 --steps 1000 ...
# GRID: claims_sweep.py's grid (main, ablations, colour; default main). SWEEP: the folder under
# outputs/ (default claims). NPROC: torchrun processes (default 16; ranks take GPUs round-robin).
# Writes outputs/$SWEEP (kept on a warm machine; else seeded from a carried outputs/${SWEEP}_prev),
# $OUT/$SWEEP.tgz (without checkpoints), $OUT/${SWEEP}_log.txt and $OUT/${SWEEP}_dmon.txt (GPU
# load), so two sweeps can run side by side in one call (each with its own NPROC).
set -u
secs=$1; shift
grid=${GRID:-main}
sweep=${SWEEP:-claims}
source scripts/gpu_setup.sh  # wheels into /tmp/site, PYTHONPATH, nerfacc built before the ranks
export OMP_NUM_THREADS=1
if [ ! -d "outputs/$sweep" ] && [ -d "outputs/${sweep}_prev" ]; then
    cp -r "outputs/${sweep}_prev" "outputs/$sweep"
fi
nvidia-smi dmon -s u -d 5 > "$OUT/${sweep}_dmon.txt" 2>&1 &
dmon=$!
timeout -k 15 "$secs" torchrun --standalone --nproc_per_node "${NPROC:-16}" scripts/claims_sweep.py \
    "$grid" --out "outputs/$sweep" "$@" > "$OUT/${sweep}_log.txt" 2>&1
echo "sweep exit $?"
kill $dmon
tar czf "$OUT/$sweep.tgz" --exclude=checkpoint.pt -C outputs "$sweep"
grep -v "Loading weights" "$OUT/${sweep}_log.txt" | tail -15
ls "outputs/$sweep" | wc -l; ls outputs/"$sweep"/*/done.json 2>/dev/null | wc -l
