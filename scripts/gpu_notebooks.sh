#!/usr/bin/env bash
# Full (GPU) runs of the notebooks whose figures need a GPU: 30 (one image, SDS / VSD / SSD, the
# correlations rho(eps_hat, eps) and rho(eps_hat, h)) and 31 (text-to-3D, method=ssd, which also
# measures rho at the trained NeRF). One call; results in $OUT/results.tgz (the figures and the
# executed notebooks) and a short table on stdout.
#
#   OUT=/tmp/out bash scripts/gpu_notebooks.sh          # from the repository root, on the GPU
#
# Then copy $OUT/figures/fig30_*.{png,json} (and fig31_ssd_* if wanted) into figures/.
set -euo pipefail
OUT=${OUT:?set OUT to an output folder}
mkdir -p "$OUT/figures" "$OUT/notebooks"
cd notebooks
export PYTHONPATH=..
export MPLBACKEND=Agg
for nb in 30_image_distillation 31_text_to_3d; do
    start=$(date +%s)
    python -m papermill "$nb.ipynb" "$OUT/notebooks/$nb.ipynb" -k python3 --no-progress-bar \
        -p device cuda -p out_dir "$OUT/figures" || echo "$nb FAILED"
    echo "$nb: $(( $(date +%s) - start )) s"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for nb in ("30_image_distillation", "31_text_to_3d"):
    cells = json.loads((out / "notebooks" / f"{nb}.ipynb").read_text())["cells"]
    for c in cells:
        for o in c.get("outputs", []):
            text = "".join(o.get("text", ""))
            for line in text.splitlines():
                if "rho(" in line or "ratio" in line or "trace cov" in line or "mask IoU" in line:
                    print(f"{nb[:2]}: {line}")
PY
# $OUT may hold at most a few files: one tarball (the run folders, with their checkpoints, stay out)
cd "$OUT" && tar czf results.tgz --exclude=figures/runs figures notebooks && rm -rf figures notebooks
ls -la "$OUT"
