#!/usr/bin/env bash
# The scene sweep (issue 13, acceptance 3) on the lent GPU machine, resumable across calls.
#   bash scripts/gpu_scenes.sh SECONDS [scene_sweep.py arguments...]
# SECONDS: the call's whole budget. Setup (wheels, nerfacc's build) and a reserve for the final
# evaluations, panoramas and packing come out of it; training stops in time for them. The runs
# live in outputs/scene_sweep_work, which a warm machine keeps between calls: call again at once
# with the same arguments to go on. $OUT gets scene_table.{json,md}, panoramas.png, runs.tar and
# sweep.log.
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
secs=$1; shift
start=$(date +%s)
source scripts/gpu_setup.sh
export OMP_NUM_THREADS=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
limit=$(( secs - ($(date +%s) - start) - ${RESERVE_S:-90} ))
echo "training limit ${limit} s"
nvidia-smi dmon -s um -d 10 > "$OUT/dmon.txt" 2>&1 &
dmon=$!
python3 scripts/scene_sweep.py --out "$OUT" --work outputs/scene_sweep_work \
    --time_limit_s "$limit" "$@" 2>&1 | grep -v "Loading\|Warning\|math:" | tail -25
kill $dmon 2>/dev/null
echo "call: $(( $(date +%s) - start )) s; finished runs: $(ls outputs/scene_sweep_work/*/result.json 2>/dev/null | wc -l)"
