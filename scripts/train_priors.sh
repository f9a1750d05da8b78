#!/usr/bin/env bash
# Trains the three shipped ShapeZoo priors from scratch on one GPU and evaluates them.
# Writes fp16 weights into sdlib/assets/shapezoo/{sd,dpt,classifier}, logs into outputs/priors/,
# metrics and the sample grid into outputs/eval/. About 10 minutes on one H100.
#   bash scripts/train_priors.sh            # everything
#   bash scripts/train_priors.sh sd         # one stage: sd | classifier | dpt | eval
set -euo pipefail
stage="${1:-all}"
N=24576
if [[ $stage == all || $stage == sd ]]; then
  python -m sdlib.priors.train_sd --n_views $N --vae_steps 3000 --vae_time_budget_s 110 \
    --unet_steps 7000 --unet_time_budget_s 300 --progress false
fi
if [[ $stage == all || $stage == classifier ]]; then
  python -m sdlib.priors.train_classifier --n_views $N --sd_model outputs/priors/sd \
    --time_budget_s 60 --progress false
fi
if [[ $stage == all || $stage == dpt ]]; then
  python -m sdlib.priors.train_depth --n_views $N --sd_model outputs/priors/sd --noise latent \
    --time_budget_s 120 --progress false
fi
if [[ $stage == all || $stage == eval ]]; then
  python scripts/eval_priors.py --out outputs/eval --steps 50 --guidance 7.5 --per_view 4
fi
