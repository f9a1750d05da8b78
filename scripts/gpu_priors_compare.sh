#!/usr/bin/env bash
# One GPU call (issue 13, acceptance 2: "object quality table not worse"): the object quality run
# (scripts/quality_shapezoo.py) on the shipped priors and, at the same time on the same GPU, on an
# older set of priors, so that the two are compared within one run.
#   OLD_ASSETS=outputs/old_assets/sdlib/assets OUT=/tmp/out bash scripts/gpu_priors_compare.sh \
#       [STEPS] [METHODS] [SECONDS]
# OLD_ASSETS: a folder holding shapezoo/{sd,dpt,classifier} (e.g. from
#   `git archive <commit> sdlib/assets | tar -x -C outputs/old_assets`).
# Writes $OUT/quality_{new,old}.json, $OUT/views.tar (each run's 8 evaluation views and turntable
# strip) and prints a per-method table: mean mask IoU, classifier accuracy, depth Pearson, PSNR and
# colour error, new and old, and the paired differences.
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
: "${OLD_ASSETS:?set OLD_ASSETS to the old sdlib/assets folder}"
steps=${1:-600}
methods=${2:-sds,ssd}
secs=${3:-450}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export TORCH_CUDA_ARCH_LIST=9.0 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OLD=/tmp/sdlib_old_repo
rm -rf "$OLD" && mkdir -p "$OLD"
tar -c --exclude=./outputs --exclude=./.whl --exclude=./.git . | tar -x -C "$OLD"
rm -rf "$OLD/sdlib/assets" && cp -r "$OLD_ASSETS" "$OLD/sdlib/assets"
PYTHONPATH=/tmp/site:$PWD python3 - <<'PY'
import torch, nerfacc  # builds nerfacc's CUDA extension once, before the workers start
est = nerfacc.OccGridEstimator(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=32).cuda()
print("nerfacc ok")
PY
start=$(date +%s)
for which in new old; do
  root=$PWD; [[ $which == old ]] && root=$OLD
  (cd "$root" && PYTHONPATH=/tmp/site:$root timeout -k 10 "$secs" python3 scripts/quality_shapezoo.py \
      --steps "$steps" --methods "$methods" --workers "${WORKERS:-8}" \
      --out "/tmp/quality_$which" --figures "/tmp/quality_$which/figures" \
      > "$OUT/log_$which.txt" 2>&1; echo "$which exit $? after $(( $(date +%s) - start )) s") &
done
wait
for which in new old; do cp "/tmp/quality_$which/quality.json" "$OUT/quality_$which.json" || true; done
(cd /tmp && tar -cf "$OUT/views.tar" quality_new/runs/*/views.png quality_new/runs/*/strip.png \
    quality_old/runs/*/views.png quality_old/runs/*/strip.png) 2>/dev/null || true
python3 - "$OUT" <<'PY'
import json, statistics as st, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = {w: {(r["object"], r["method"]): r for r in json.loads((out / f"quality_{w}.json").read_text())}
        for w in ("new", "old") if (out / f"quality_{w}.json").exists()}
keys = ("mask_iou", "classifier_accuracy", "depth_pearson", "psnr", "color_delta_e")
print("method  n  " + "  ".join(f"{k:>22s}" for k in keys) + "   (new / old / paired mean diff)")
for m in sorted({k[1] for w in rows.values() for k in w}):
    pairs = [(rows["new"][k], rows["old"][k]) for k in rows.get("new", {})
             if k[1] == m and k in rows.get("old", {})]
    cells = []
    for key in keys:
        if not pairs or key not in pairs[0][0]:
            cells.append(f"{'-':>22s}")
            continue
        a = [p[0][key] for p in pairs]
        b = [p[1][key] for p in pairs]
        cells.append(f"{st.mean(a):6.3f}/{st.mean(b):6.3f}/{st.mean(x - y for x, y in zip(a, b)):+6.3f}")
    print(f"{m:6s} {len(pairs):2d}  " + "  ".join(cells))
PY
ls -la "$OUT"
