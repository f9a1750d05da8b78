#!/usr/bin/env bash
# Trains the three shipped ShapeZoo priors from scratch on one GPU, on objects AND scenes (a quarter
# of the views are ShapeZoo scenes seen from inside), and evaluates them (objects and scenes apart).
# The classifier and ShapeZoo-DPT start as soon as ShapeZoo-SD's autoencoder is final and train on
# the same GPU while its UNet trains. About 8 minutes on one H200 (budgets: VAE 80 s, UNet 270 s,
# classifier 60 s, DPT 120 s, then the evaluation).
# Writes fp16 weights into $EXPORT_ROOT/{sd,dpt,classifier} (default sdlib/assets/shapezoo), logs
# into $PRIORS_DIR (default outputs/priors), metrics and the sample grid into $EVAL_DIR
# (default outputs/eval).
#   bash scripts/train_priors.sh            # everything
#   bash scripts/train_priors.sh sd         # one stage: sd | classifier | dpt | eval
#   bash scripts/train_priors.sh train      # the three trainings, no evaluation
# SD_ARGS, CLF_ARGS, DPT_ARGS, EVAL_ARGS: extra arguments appended to each command (a CPU check:
#   SD_ARGS="--device cpu --arch tiny --n_views 96 --vae_steps 2 --unet_steps 2" ...).
set -euo pipefail
stage="${1:-all}"
N=24576
EXPORT_ROOT="${EXPORT_ROOT:-sdlib/assets/shapezoo}"
PRIORS_DIR="${PRIORS_DIR:-outputs/priors}"
EVAL_DIR="${EVAL_DIR:-outputs/eval}"
COMMON=(--n_views $N --out_dir "$PRIORS_DIR" --data_cache "$PRIORS_DIR/views.pt" --progress false)

sd() {
  python -m sdlib.priors.train_sd "${COMMON[@]}" --export_dir "$EXPORT_ROOT/sd" \
    --vae_steps 3000 --vae_time_budget_s 80 --unet_steps 7000 --unet_time_budget_s 270 ${SD_ARGS:-}
}
classifier() {
  python -m sdlib.priors.train_classifier "${COMMON[@]}" --export_dir "$EXPORT_ROOT/classifier" \
    --sd_model "$PRIORS_DIR/sd_vae" --time_budget_s 60 ${CLF_ARGS:-}
}
dpt() {
  python -m sdlib.priors.train_depth "${COMMON[@]}" --export_dir "$EXPORT_ROOT/dpt" \
    --sd_model "$PRIORS_DIR/sd_vae" --noise latent --time_budget_s 120 ${DPT_ARGS:-}
}
evaluate() {
  python scripts/eval_priors.py --out "$EVAL_DIR" --steps 50 --guidance 7.5 --per_view 4 \
    --sd "$EXPORT_ROOT/sd" --dpt "$EXPORT_ROOT/dpt" --classifier "$EXPORT_ROOT/classifier" \
    ${EVAL_ARGS:-}
}

case $stage in
  sd) sd ;;
  classifier) classifier ;;
  dpt) dpt ;;
  eval) evaluate ;;
  train|all)
    sd &
    sd_pid=$!
    until [[ -f "$PRIORS_DIR/sd_vae/READY" ]]; do  # the autoencoder is final
      kill -0 $sd_pid 2>/dev/null || { wait $sd_pid; echo "train_sd ended early" >&2; exit 1; }
      sleep 2
    done
    classifier &
    clf_pid=$!
    dpt &
    dpt_pid=$!
    wait $sd_pid
    wait $clf_pid
    wait $dpt_pid
    if [[ $stage == all ]]; then evaluate; fi
    ;;
  *) echo "unknown stage '$stage': sd | classifier | dpt | eval | train | all" >&2; exit 2 ;;
esac
