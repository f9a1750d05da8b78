#!/bin/bash
# The claims sweep on the lent GPU machine (one H200), resumable across calls.
#   bash scripts/gpu_claims.sh SECONDS [claims_sweep.py arguments...]
# Writes outputs/claims (kept on a warm machine; else seeded from a carried outputs/claims_prev),
# $OUT/claims.tgz (without checkpoints), $OUT/main_log.txt and $OUT/dmon.txt (GPU load).
set -u
secs=$1; shift
source scripts/gpu_setup.sh  # wheels into /tmp/site, PYTHONPATH, nerfacc built before the ranks
export OMP_NUM_THREADS=1
if [ ! -d outputs/claims ] && [ -d outputs/claims_prev ]; then cp -r outputs/claims_prev outputs/claims; fi
nvidia-smi dmon -s u -d 5 > "$OUT/dmon.txt" 2>&1 &
dmon=$!
timeout -k 15 "$secs" torchrun --standalone --nproc_per_node "${NPROC:-16}" scripts/claims_sweep.py \
    main --out outputs/claims "$@" > "$OUT/main_log.txt" 2>&1
echo "sweep exit $?"
kill $dmon
tar czf "$OUT/claims.tgz" --exclude=checkpoint.pt -C outputs claims
grep -v "Loading weights" "$OUT/main_log.txt" | tail -40
ls outputs/claims | wc -l; ls outputs/claims/*/done.json 2>/dev/null | wc -l
