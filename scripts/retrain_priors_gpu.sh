#!/usr/bin/env bash
# One GPU call (issue 13, item 2): retrains ShapeZoo-SD, the classifier and ShapeZoo-DPT on objects
# and scenes, evaluates them, and leaves under $OUT (7 files, each <= 15 MiB):
#   assets.tar.part-00, -01, ...   the new fp16 assets {sd,dpt,classifier} as one split tar
#   metrics.json, samples_grid.png the evaluation (scripts/eval_priors.py; objects and scenes apart;
#                                  run after packing, cut at EVAL_LIMIT_S = 570 s from the start)
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
EXPORT_ROOT="$NEW" PRIORS_DIR="$WORK" bash scripts/train_priors.sh train \
  2>&1 | tee "$OUT/train.log" || status=$?
echo "training: $(( $(date +%s) - start )) s, exit status $status"
# pack whatever exists first, even after a failure (the log says which stage failed), so that the
# weights come back even if the evaluation below runs out of time
if [[ -d "$NEW/sd" && -d "$NEW/dpt" && -d "$NEW/classifier" ]]; then
  tar -C "$NEW" -cf /tmp/sdlib_assets.tar sd dpt classifier
  split -b 15M -d /tmp/sdlib_assets.tar "$OUT/assets.tar.part-"
  echo "assets: $(du -sh "$NEW" | cut -f1) in all; largest files:"
  find "$NEW" -type f -printf '%s %p\n' | sort -n | tail -3
fi
(cd "$WORK" && tar -cf "$OUT/logs.tar" ./*.csv ./*.json 2>/dev/null) || true
# the evaluation gets what is left of EVAL_LIMIT_S (default: until 570 s after the start)
left=$(( ${EVAL_LIMIT_S:-570} - ($(date +%s) - start) ))
if (( status == 0 && left > 20 )); then
  EXPORT_ROOT="$NEW" EVAL_DIR="$WORK/eval" timeout "$left" bash scripts/train_priors.sh eval \
    2>&1 | tee -a "$OUT/train.log" || echo "evaluation ended early (limit ${left} s)"
fi
cp "$WORK/eval/metrics.json" "$WORK/eval/samples_grid.png" "$OUT/" 2>/dev/null || true
echo "total $(( $(date +%s) - start )) s, exit status $status"
ls -la "$OUT"
exit $status
