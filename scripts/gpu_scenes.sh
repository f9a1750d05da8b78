#!/usr/bin/env bash
# The scene sweep (issue 13, acceptance 3) on the lent GPU machine, resumable across calls.
#   bash scripts/gpu_scenes.sh SECONDS [scene_sweep.py arguments...]
# SECONDS: the call's whole budget. Setup (wheels, nerfacc's build) and a reserve for the final
# evaluations, panoramas and packing come out of it; training stops in time for them. The runs
# live in outputs/scene_sweep_work, which a warm machine keeps between calls: call again at once
# with the same arguments to go on. $OUT gets scene_table.{json,md}, panoramas.png, runs.tar,
# sweep.log and records.tgz: the finished runs' result.json, evaluations along training
# (eval.jsonl) and panoramas (~0.25 MB a run, no checkpoints). A later session goes on from
# them: carry the file (as, say, outputs/scene_records.tgz) and set RECORDS to it; its finished
# runs are skipped and stay in the table and the panoramas (a sweep split by method over
# sessions, notes/NEXT_GPU.md). RECORDS may name several archives, separated by spaces (e.g.
# RECORDS="notes/scene_records_sds.tgz notes/scene_records_ssd.tar.xz"), each .tgz or .tar.xz:
# all are unpacked into the run folder, and the next records.tgz holds them all. WORK (default
# outputs/scene_sweep_work) moves the run folder, so that two sweeps can share a machine, each
# with CUDA_VISIBLE_DEVICES and OUT of its own.
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
secs=$1; shift
start=$(date +%s)
source scripts/gpu_setup.sh
work=${WORK:-outputs/scene_sweep_work}
if [ -n "${RECORDS:-}" ]; then
    # Python's tarfile reads gzip and xz alike (no xz binary needed on the GPU image)
    mkdir -p "$work" && python3 -c 'import sys, tarfile
for f in sys.argv[2:]:
    with tarfile.open(f) as tar:
        tar.extractall(sys.argv[1], filter="data")' "$work" $RECORDS || exit 1
    echo "records: $(ls "$work"/*/result.json 2>/dev/null | wc -l) finished runs from $RECORDS"
fi
export OMP_NUM_THREADS=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
limit=$(( secs - ($(date +%s) - start) - ${RESERVE_S:-90} ))
echo "training limit ${limit} s"
nvidia-smi dmon -s um -d 10 > "$OUT/dmon.txt" 2>&1 &
dmon=$!
python3 scripts/scene_sweep.py --out "$OUT" --work "$work" \
    --time_limit_s "$limit" "$@" 2>&1 | grep -v "Loading\|Warning\|math:" | tail -25
kill $dmon 2>/dev/null
(cd "$work" && { ls -d */result.json pano_*; for r in */result.json; do ls -d "${r%/result.json}/eval.jsonl"; done; } 2>/dev/null | tar czf "$OUT/records.tgz" -T -)
echo "call: $(( $(date +%s) - start )) s; finished runs: $(ls "$work"/*/result.json 2>/dev/null | wc -l)"
