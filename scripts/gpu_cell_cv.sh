#!/usr/bin/env bash
# Issue 12, acceptance 2 on the lent GPU: the cell control variate's variance AND variance × time
# per UNet evaluation against SDS, at frozen θs, on the 8 benchmark prompts, one prompt at a time
# (alone on the GPU, so that the times mean something), resumable across calls.
#   bash scripts/gpu_cell_cv.sh SECONDS
# SECONDS: the call's budget. First (once per machine) the CUDA tests of the batched per-view
# render (tests/test_per_view.py, tests/test_cell_control_variate.py); then, for each prompt of
# sdlib.shapezoo.objects.BENCHMARK_PROMPTS not yet done, scripts/cell_cv_probe.py (~60-70 s each
# on an H200: 300 SDS steps, then 24 batches × 8 evaluations per design). Finished prompts live
# in outputs/cell_cv_work, which a warm machine keeps: call again at once to go on. $OUT gets
# p<i>.json per finished prompt, tests.log and table.md (claims.probe_table: mean over prompts
# with bootstrap intervals of the variance ratio and of variance × time).
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
secs=$1
start=$(date +%s)
source scripts/gpu_setup.sh
work=outputs/cell_cv_work
mkdir -p "$work"
left() { echo $(( secs - ($(date +%s) - start) - 15 )); }
if [ ! -f "$work/tests.done" ]; then  # pytest's wheels: .whl/test (scripts/gpu_cuda_tests.sh)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/test/*.whl
    timeout "$(left)" python3 -m pytest -q -p no:cacheprovider tests/test_per_view.py \
        tests/test_cell_control_variate.py > "$work/tests.log" 2>&1 && touch "$work/tests.done"
    tail -n 3 "$work/tests.log"
fi
mapfile -t prompts < <(python3 -c "
from sdlib.shapezoo.objects import BENCHMARK_PROMPTS
print('\n'.join(BENCHMARK_PROMPTS))")
for i in "${!prompts[@]}"; do
    [ -f "$work/p$i.json" ] && continue
    l=$(left)
    if [ "$l" -lt "${MIN_PROMPT_S:-80}" ]; then echo "prompt $i: not run, $l s left"; break; fi
    echo "prompt $i (${prompts[$i]}): limit $l s, at $(( $(date +%s) - start )) s"
    timeout "$l" python3 scripts/cell_cv_probe.py --device cuda --prompt "${prompts[$i]}" \
        --out "$work/p$i.json.tmp" > "$work/p$i.log" 2>&1
    grep -v "Loading\|Warning\|warn\|math:" "$work/p$i.log" | tail -n 6
    [ -f "$work/p$i.json.tmp" ] && mv "$work/p$i.json.tmp" "$work/p$i.json"
done
cp "$work"/p*.json "$work/tests.log" "$OUT"/ 2>/dev/null
python3 - "$work" > "$OUT/table.md" <<'PY'
import sys
from pathlib import Path
from sdlib import claims
files = sorted(Path(sys.argv[1]).glob("p[0-9]*.json"))
table = claims.probe_table(files, n_boot=2000)
print(f"{len(files)} prompts, one at a time; ratios to SDS at the same θ, mean over prompts "
      "[95% bootstrap interval over prompts]\n")
print("| design | variance per evaluation | pooled | variance × time | time | lowest on |")
print("|---|---|---|---|---|---|")
for name, d in table.items():
    t = sorted(d["time_ratios"])
    print(f"| {name} | {d['mean']} | {d['pooled']:.2f} | {d['x_time']} | "
          f"{t[len(t) // 2]:.2f}× (median) | {d['best_on']} |")
PY
cat "$OUT/table.md"
echo "total $(( $(date +%s) - start )) s"
