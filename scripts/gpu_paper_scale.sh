#!/usr/bin/env bash
# Issue 14, item 3, in one GPU call (one H200, the whole call <= 560 s): paper-scale memory and
# step time of SDS, SSD and VSD (random weights of SD 2.1-base's and DPT-Hybrid's sizes), the
# time to the first step with an empty and with a warm compile cache, LONG_STEPS steps each
# checked for NaN, the cost of TrainConfig.deterministic, float16 against float32 gradients
# (SSD's ∇φ and h, VSD's LoRA step), and notebook 50 at SD-2.1 size.
#
#   OUT=/tmp/out bash scripts/gpu_paper_scale.sh     # from the repository root on the GPU machine,
#                                                    # with .whl carried (diffusers, nerfacc, and
#                                                    # .whl/notebook: papermill and ipykernel)
#   SDLIB_PAPER_SCALE_CPU=1 OUT=/tmp/out bash scripts/gpu_paper_scale.sh
#                                  # the same plumbing on the CPU: tiny models, eager, few steps
#
# Phases, each under `timeout` and within BUDGET seconds in all, ordered so that what matters
# most is done first if time runs out (the elapsed seconds are printed after each):
#   setup        wheels and nerfacc's CUDA build (scripts/gpu_setup.sh)
#   models       the random float16 SD-2.1-base and DPT-Hybrid folders (outputs/paper_models)
#   fp16_check   in the background beside cold_sds (it times nothing; cold_sds's compilation
#                shares the host with it): bench_paper_step.py --fp16_check
#   per method (METHODS, in order):
#     cold_<m>   a new process with an empty compile cache: time to the first step, 20 steps
#     warm_<m>   a new process with the cache cold_<m> (and the methods before it) filled: time to
#                the first step, step time, peak memory, LONG_STEPS steps checked for NaN / inf
#                (stopped short of the phase's limit if need be, and marked so)
#   deterministic  eager against TrainConfig.deterministic=True, SDS and SSD, 20 steps: the cost
#   nb50         notebook 50 through papermill at SD-2.1 size, NB_STEPS steps per method
#   merge        scripts/paper_scale_table.py: $OUT/paper_scale_h200.json and the tables
# The cache is shared by the methods, as a user's would be: cold_ssd and cold_vsd find the prior
# UNet's and the VAE encoder's graphs already compiled by cold_sds.
#
# $OUT gets four files: paper_scale_h200.json (every phase's results), paper_scale.md (the
# tables), logs.tgz (each phase's log, JSON and status) and nb50.tgz (the executed notebook and
# its figures).
#
# Expected on the H200 (16 host cores; estimates from earlier runs, not yet measured as phases):
# setup 50-60 s, models 30-60 s, fp16_check 60-100 s (in the background), cold_sds 60-180 s,
# warm_sds 70-110 s, cold_ssd ~150-170 s, warm_ssd 90-130 s, cold_vsd 170-330 s, warm_vsd
# 90-130 s, deterministic 50-80 s, nb50 120-200 s (eager) - more than one call's 540 s: a phase
# starts only if its minimum fits (cold: MIN_COLD_SDS 100, _SSD 170, _VSD 240; warm: MIN_WARM 90;
# the long run stops 25 s before its phase's limit), the rest is marked "notrun", and a second
# call finishes it: unpack the first call's logs.tgz into outputs/paper_scale_prev, carry it,
# and run with PREV=outputs/paper_scale_prev (METHODS=vsd, say); its table merges both calls.
#
# Environment: BUDGET (540), METHODS ("sds ssd vsd"), LONG_STEPS (1000), NB_STEPS (200), SKIP
# (phases to leave out, e.g. "nb50 deterministic"), REDO (phases to run again although done in
# PREV or the kept STATE, e.g. "warm_vsd"), PARALLEL_FP16 (1), MIN_COLD_<METHOD>,
# MIN_WARM, STATE (outputs/paper_scale; emptied at the start unless KEEP_STATE=1), PREV (an
# earlier call's logs.tgz unpacked: its finished phases are skipped and its results merged; a
# cold_<m> is re-run with its warm_<m> unless warm_<m> is done, except when this machine's kept
# STATE has it: then its graphs are in the cache). A cold_<m> run again after an attempt on
# this machine that did not finish starts from a partly filled cache: the table says so.
# Notebook 50 runs compiled only when this call warmed the cache for all three methods, else
# eager.
set -u
OUT=${OUT:?set OUT to an output folder}
START=$(date +%s)
BUDGET=${BUDGET:-540}
RESERVE=20  # seconds kept for the merge and the tarballs
METHODS=${METHODS:-sds ssd vsd}
SKIP=" ${SKIP:-} "
REDO=" ${REDO:-} "  # phases to run again although an earlier call finished them
PREV=${PREV:-}
STATE=${STATE:-outputs/paper_scale}
CPU=${SDLIB_PAPER_SCALE_CPU:-0}
[ "${KEEP_STATE:-0}" = 1 ] || rm -rf "$STATE"
mkdir -p "$STATE/logs" "$OUT"
STATE=$(cd "$STATE" && pwd)
export SDLIB_COMPILE_CACHE=$STATE/compile_cache
# cold means cold; KEEP_STATE=1 (a second call on the same warm machine) keeps the cache the
# first call filled, so that its warm_<m> phases find it (a cold_<m> run then is not cold)
[ "${KEEP_STATE:-0}" = 1 ] || rm -rf "$SDLIB_COMPILE_CACHE"
unset TORCHINDUCTOR_CACHE_DIR

if [ "$CPU" = 1 ]; then
    PY=${PYTHON:-python}
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
        MPLBACKEND=Agg
    DEVICE=(--device cpu --tiny)
    MODELS=$STATE/models
    VARIANT=eager
    LONG_STEPS=${LONG_STEPS:-5}; STEPS=3; WARMUP=1; NB_STEPS=${NB_STEPS:-2}
    FP16_ARGS=(--fp16_timesteps 50,950 --fp16_batches 1)
    SETUP_SECONDS=0
else
    PY=python3
    NOTEBOOK_WHEELS=1
    # shellcheck source=scripts/gpu_setup.sh
    source scripts/gpu_setup.sh
    DEVICE=(--device cuda)
    MODELS=$PWD/outputs/paper_models
    VARIANT=compiled
    LONG_STEPS=${LONG_STEPS:-1000}; STEPS=20; WARMUP=3; NB_STEPS=${NB_STEPS:-200}
    FP16_ARGS=()
fi
BENCH=("$PY" scripts/bench_paper_step.py "${DEVICE[@]}" --workdir "$MODELS")
# the seconds a phase needs before it is started (H200 estimates; MIN_COLD_<M> overrides)
min_cold() {
    local var="MIN_COLD_${1^^}" default=20
    if [ "$CPU" != 1 ]; then case $1 in sds) default=100;; ssd) default=170;; *) default=240;; esac; fi
    echo "${!var:-$default}"
}
MIN_WARM=${MIN_WARM:-$([ "$CPU" = 1 ] && echo 15 || echo 90)}

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) - RESERVE )); }
done_before() { [ -f "$STATE/$1.done" ] || { [ -n "$PREV" ] && [ -f "$PREV/$1.done" ]; }; }

# phase NAME CAP MIN COMMAND...: runs COMMAND under `timeout` for min(CAP, time left) seconds,
# unless it is skipped, finished in PREV or (KEEP_STATE=1) in an earlier call's STATE (and
# neither FORCE set nor NAME in REDO), or fewer than MIN seconds are left;
# the log goes to
# $STATE/logs/NAME.log, the status to $STATE/phases.tsv, and NAME.done marks success.
# BENCH_STOP_AT tells bench_paper_step.py when to end its long run (25 s before the limit).
phase() {
    local name=$1 cap=$2 min=$3; shift 3
    if [[ "$SKIP" == *" $name "* ]]; then echo "== $name: skipped (SKIP)"; return 0; fi
    if [ -z "${FORCE:-}" ] && [[ "$REDO" != *" $name "* ]] && done_before "$name"; then
        echo "== $name: done in an earlier call (PREV or the kept STATE), skipped"; return 0
    fi
    local l; l=$(left)
    local t=$(( cap < l ? cap : l ))
    if [ "$t" -lt "$min" ]; then
        echo "== $name: not run, ${l} s left (needs ${min})"
        echo "$name notrun 0" >> "$STATE/phases.tsv"
        return 0
    fi
    rm -f "$STATE/$name.done"  # a phase run again (FORCE, REDO) is done only if it succeeds
    echo "== $name: limit ${t} s, at $(elapsed) s"
    local s; s=$(date +%s)
    BENCH_STOP_AT=$(( s + t - 25 )) timeout -k 10 "$t" "$@" > "$STATE/logs/$name.log" 2>&1
    local rc=$?
    local d=$(( $(date +%s) - s ))
    echo "$name $rc $d" >> "$STATE/phases.tsv"
    [ "$rc" = 0 ] && touch "$STATE/$name.done"
    grep -v "Loading weights\|Writing model\|torchvision\|should be kept in float32" \
        "$STATE/logs/$name.log" | tail -n 4
    echo "== $name: exit $rc after ${d} s (at $(elapsed) s)"
}

echo "setup $([ "$CPU" = 1 ] && echo "(CPU: tiny models)") ${SETUP_SECONDS} s" \
    | tee "$STATE/logs/setup.log"
"$PY" - "$STATE/setup.json" "$SETUP_SECONDS" "$CPU" <<'PY'
import json, os, sys, torch
info = {"setup_s": float(sys.argv[2]), "cpu_mode": sys.argv[3] == "1", "torch": torch.__version__,
        "cpus": os.cpu_count(), "cuda": torch.cuda.is_available()}
if torch.cuda.is_available():
    info["device"] = torch.cuda.get_device_name()
    info["device_total_gb"] = torch.cuda.mem_get_info()[1] / 2**30
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(info)
PY

FORCE=1 phase models 200 20 "$PY" -c "
import sys; sys.path.insert(0, 'scripts')
from pathlib import Path
from bench_paper_step import build_models
print(build_models(Path(sys.argv[1]), sys.argv[2], sys.argv[3] == '1'))" \
    "$MODELS" "${DEVICE[1]}" "$CPU"

fp16_pid=
if [ "${PARALLEL_FP16:-1}" = 1 ]; then
    phase fp16_check 300 60 "${BENCH[@]}" --variants "" --fp16_check "${FP16_ARGS[@]}" \
        --out "$STATE/fp16_check.json" &
    fp16_pid=$!
fi
for m in $METHODS; do
    if [ -f "$STATE/cold_$m.done" ] && [[ "$REDO" != *" cold_$m "* ]]; then
        # measured cold on this machine (KEEP_STATE=1) and its graphs are in the kept cache:
        # a re-run would be warm and would overwrite the cold number
        echo "== cold_$m: done in the kept STATE, skipped (the cache holds its graphs)"
    elif ! done_before "warm_$m"; then
        # a cold phase starts only with time for its compilation (else the time goes to the
        # phases after it; METHODS=... PREV=... in a second call does the rest); after an
        # attempt on this machine that did not finish, the cache is partly filled: marked so
        partial=; [ -f "$STATE/logs/cold_$m.log" ] && partial=1
        FORCE=1 phase "cold_$m" 420 "$(min_cold "$m")" "${BENCH[@]}" --methods "$m" \
            --variants "$VARIANT" --no-theta_grad --no-ssd_linear --steps "$STEPS" \
            --warmup "$WARMUP" --parts 0 --long_steps 0 --profile "" --out "$STATE/cold_$m.json"
        if [ -n "$partial" ] && [ -f "$STATE/cold_$m.json" ]; then
            "$PY" -c "import json, sys; p = sys.argv[1]; d = json.load(open(p))
d['cache_partly_filled'] = True; json.dump(d, open(p, 'w'), indent=1)" "$STATE/cold_$m.json"
        fi
    fi
    if [ -n "$fp16_pid" ]; then wait "$fp16_pid"; fp16_pid=; fi  # nothing beside the timings
    if [ ! -f "$STATE/cold_$m.done" ] && ! done_before "warm_$m"; then
        echo "== warm_$m: not run (cold_$m did not finish in this call: the cache is not warm)"
        echo "warm_$m notrun 0" >> "$STATE/phases.tsv"
        continue
    fi
    phase "warm_$m" 300 "$MIN_WARM" "${BENCH[@]}" --methods "$m" --variants "$VARIANT" \
        --no-theta_grad --no-ssd_linear --steps "$STEPS" --warmup "$WARMUP" --parts 0 \
        --long_steps "$LONG_STEPS" --profile "" --out "$STATE/warm_$m.json"
done
if [ -n "$fp16_pid" ]; then wait "$fp16_pid"; fi
if [ "${PARALLEL_FP16:-1}" != 1 ]; then
    phase fp16_check 240 60 "${BENCH[@]}" --variants "" --fp16_check "${FP16_ARGS[@]}" \
        --out "$STATE/fp16_check.json"
fi
phase deterministic 180 45 "${BENCH[@]}" --methods sds,ssd --variants eager,deterministic \
    --no-ssd_linear --steps "$STEPS" --warmup "$WARMUP" --parts 0 --profile "" \
    --out "$STATE/deterministic.json"

mkdir -p "$STATE/nb50"
# compiled only when this call's cache holds every method's graphs (else eager: a cold compile
# of three methods does not fit beside the rest)
NB_COMPILED=True
for m in sds ssd vsd; do [ -f "$STATE/warm_$m.done" ] || NB_COMPILED=False; done
if [ "$CPU" = 1 ]; then
    NB_COMPILED=False  # the smoke run is eager
    NB_PARAMS=(-p device cpu -p smoke True)
else
    NB_PARAMS=(-p device cuda -p prior "$MODELS/sd21_base_random"
               -p depth "$MODELS/dpt_hybrid_random" -p steps "$NB_STEPS"
               -p compiled "$NB_COMPILED")
fi
nb_start=$(date +%s)
phase nb50 300 90 "$PY" -m papermill notebooks/50_stable_diffusion.ipynb \
    "$STATE/nb50/50_stable_diffusion.ipynb" -k python3 --no-progress-bar --cwd notebooks \
    "${NB_PARAMS[@]}" -p variance_samples 4 -p out_dir "$STATE/nb50" \
    -p run_dir "$STATE/nb50_runs"
if grep -q "^nb50 " "$STATE/phases.tsv" 2>/dev/null; then
    nb_rc=$(grep "^nb50 " "$STATE/phases.tsv" | tail -1 | cut -d' ' -f2)
    echo "{\"exit\": \"$nb_rc\", \"seconds\": $(( $(date +%s) - nb_start )), \"steps\": \
$NB_STEPS, \"device\": \"${DEVICE[1]}\", \"variance_samples\": 4, \"compiled\": \
\"$NB_COMPILED\"}" > "$STATE/nb50.json"
fi

echo "== merge at $(elapsed) s"
STATES=(--state "$STATE")
if [ -n "$PREV" ]; then STATES=(--state "$PREV" --state "$STATE"); fi
"$PY" scripts/paper_scale_table.py "${STATES[@]}" --out "$OUT/paper_scale_h200.json" \
    | tee "$OUT/paper_scale.md"
tar czf "$OUT/logs.tgz" -C "$STATE" --exclude=compile_cache --exclude=models --exclude=nb50 \
    --exclude=nb50_runs .
tar czf "$OUT/nb50.tgz" -C "$STATE" nb50
ls -la "$OUT"
echo "total $(elapsed) s"
