#!/usr/bin/env bash
# One GPU call (issue 13, acceptance 2: "object quality table not worse"): the object quality run
# (scripts/quality_shapezoo.py) on the priors in this working tree, all runs at once.
#   LABEL=new OUT=/tmp/out bash scripts/gpu_priors_compare.sh [STEPS] [METHODS] [SECONDS]
# Run it once with the new and once with the old sdlib/assets in the tree (the quality metrics do
# not depend on the GPU's load), then compare: python scripts/compare_quality.py new.json old.json
# Writes $OUT/quality_$LABEL.json, $OUT/views_$LABEL.tar (each run's 8 evaluation views and
# turntable strip) and $OUT/log_$LABEL.txt.
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
label=${LABEL:-new}
steps=${1:-600}
methods=${2:-sds,ssd}
secs=${3:-450}
source scripts/gpu_setup.sh
export OMP_NUM_THREADS=1
start=$(date +%s)
q=/tmp/quality_$label
timeout -k 10 "$secs" python3 scripts/quality_shapezoo.py --steps "$steps" --methods "$methods" \
    --workers "${WORKERS:-16}" --out "$q" --figures "$q/figures" > "$OUT/log_$label.txt" 2>&1
echo "$label exit $? after $(( $(date +%s) - start )) s"
cp "$q/quality.json" "$OUT/quality_$label.json"
(cd /tmp && tar -cf "$OUT/views_$label.tar" "quality_$label"/runs/*/views.png \
    "quality_$label"/runs/*/strip.png) 2>/dev/null || true
python3 - "$OUT/quality_$label.json" <<'PY'
import json, statistics as st, sys
rows = json.load(open(sys.argv[1]))
for m in sorted({r["method"] for r in rows}):
    rs = [r for r in rows if r["method"] == m]
    print(m, len(rs), "  ".join(f"{k} {st.mean(r[k] for r in rs):.3f}" for k in
          ("mask_iou", "classifier_accuracy", "depth_pearson", "psnr", "color_delta_e")))
PY
ls -la "$OUT"
