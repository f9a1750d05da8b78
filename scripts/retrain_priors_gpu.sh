#!/usr/bin/env bash
# One GPU call (issue 13, item 2): retrains ShapeZoo-SD, the classifier and ShapeZoo-DPT on objects
# and scenes, evaluates them, and leaves under $OUT (7 files, each <= 15 MiB):
#   assets.tar.part-00, -01, ...   the new fp16 assets {sd,dpt,classifier} as one split tar
#   metrics.json, samples_grid.png the evaluation (scripts/eval_priors.py; objects and scenes apart)
#   train.log, logs.tar            console output and the training logs
# About 8-9 minutes on one H200. The shipped weights in sdlib/assets are not touched. To install:
#   rm -rf sdlib/assets/shapezoo/{sd,dpt,classifier}
#   cat assets.tar.part-* | tar -x -C sdlib/assets/shapezoo && du -sh sdlib/assets
set -euo pipefail
: "${OUT:?set OUT to the folder for the results}"
NEW=/tmp/sdlib_new_assets
WORK=/tmp/sdlib_priors
rm -rf "$NEW" "$WORK"
mkdir -p "$NEW"
start=$(date +%s)
status=0
EXPORT_ROOT="$NEW" PRIORS_DIR="$WORK" EVAL_DIR="$WORK/eval" bash scripts/train_priors.sh all \
  2>&1 | tee "$OUT/train.log" || status=$?
# pack whatever exists, even after a failure (the log says which stage failed)
if [[ -d "$NEW/sd" && -d "$NEW/dpt" && -d "$NEW/classifier" ]]; then
  tar -C "$NEW" -cf /tmp/sdlib_assets.tar sd dpt classifier
  split -b 15M -d /tmp/sdlib_assets.tar "$OUT/assets.tar.part-"
  echo "assets: $(du -sh "$NEW" | cut -f1) in all; largest files:"
  find "$NEW" -type f -printf '%s %p\n' | sort -n | tail -3
fi
cp "$WORK/eval/metrics.json" "$WORK/eval/samples_grid.png" "$OUT/" 2>/dev/null || true
(cd "$WORK" && tar -cf "$OUT/logs.tar" ./*.csv ./*.json 2>/dev/null) || true
echo "total $(( $(date +%s) - start )) s, exit status $status"
ls -la "$OUT"
exit $status
