# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 41 — The paper's Fig. 5: gradient variance along training, with intervals
#
# **Claim** (SteinDreamer, arXiv 2401.00604, Fig. 5): along training, SSD's gradient variance
# stays below VSD's, which stays below SDS's. The paper shows one curve per method, with no
# interval.
#
# **What we measure** (`scripts/claims_sweep.py main`, ShapeZoo preset, 8 prompts × seeds
# 0–2, 500 steps): every run is probed at 5 checkpoints of its *own* trajectory (steps 100, 200,
# 300, 400, 500) on a paired design of 4 cameras × 3 timesteps × 4 noises, its own estimator and
# SDS's on the same draws (notebook 40 explains the design and the split). Two views:
#
# 1. **each method on its own trajectory** (the paper's Fig. 5): $\operatorname{tr}\mathrm{Cov}$ of
#    one draw's gradient, median over runs (prompts × seeds) with a 95% bootstrap interval. The θs
#    differ between methods, so this mixes the estimator with where it has led θ;
# 2. **all methods at shared θs**: at each method's θ, its estimator against SDS's on the same
#    draws (paired ratio, geometric mean over runs, 95% interval). This isolates the estimator.
#
# Total and noise-only parts, θ (NeRF parameters, count-sketched) and latent gradients.
#
# **Data**: `notes/claims_h200/runs.json.gz` (H200; its `meta` names the command and the priors).
# Seed 0 finished for every prompt and method; seeds 1–2 are partial (the device budget ran out):
# each point states its number of runs. The issue asks for ≥ 2,000 steps; this sweep has 500.
# `smoke=True`: a tiny CPU sweep (random priors), which checks the machinery only.
#
# **Runtime**: default ≈ 15 s; `smoke=True` ≈ 20 s (2-core CPU).
#
# **sdlib modules**: `sdlib.claims`, `sdlib.gradient_variance`, `sdlib.decomposition`.

# %% tags=["parameters"]
seed: int = 0  # seed of the bootstrap resampling
device: str = "cpu"  # unused: the probes ran on the GPU
smoke: bool = False  # run a tiny CPU sweep instead of reading the committed one
out_dir: str = ""  # figures + sidecars; empty: a scratch folder (outputs/figures), never figures/
sweep: str = ""  # a sweep folder or compact file; empty: the committed H200 sweep (or smoke's)
n_boot: int = 2000  # bootstrap resamples

# %%
from sdlib.figures import resolve_out_dir

out_dir = str(resolve_out_dir(out_dir))  # "" -> outputs/figures; `make figures` writes figures/

import matplotlib.pyplot as plt

from sdlib import claims
from sdlib.figures import savefig

NOTEBOOK = "41_variance_along_training.ipynb"
parameters = dict(seed=seed, device=device, smoke=smoke, out_dir=out_dir, sweep=sweep,
                  n_boot=n_boot)
if smoke:
    n_boot = 200
path, runs, meta = claims.open_sweep(sweep, smoke)
print(f"{len(runs)} runs ({sum(r.done for r in runs)} finished), priors "
      f"{claims.priors_digest(meta)}")

# %% [markdown]
# ## 1. Each method on its own trajectory

# %%
own = {(space, part): claims.variance_curves(runs, space, part, n_boot=n_boot)
       for space in ("theta", "latent") for part in ("total", "noise_only")}
for (space, part), curves in own.items():
    print(f"{space}, {part}: median tr Cov over runs [95% CI] (runs)")
    for label, c in curves.items():
        cells = ", ".join(f"{m:.3g} [{lo:.3g}, {hi:.3g}] ({n})"
                          for m, lo, hi, n in zip(c["median"], c["lo"], c["hi"], c["n"]))
        print(f"  {label:26s} {cells}")

# %% [markdown]
# ## 2. At shared θs: each estimator over SDS's, same draws

# %%
paired = {(space, part): claims.paired_ratio_curves(runs, space, part, n_boot=n_boot)
          for space in ("theta", "latent") for part in ("total", "noise_only")}
for (space, part), curves in paired.items():
    print(f"{space}, {part}: tr Cov / SDS's at steps {next(iter(curves.values()))['step']}"
          if curves else f"{space}, {part}: no paired probes")
    for label, c in curves.items():
        cells = ", ".join(f"{g:.2f} [{lo:.2f}, {hi:.2f}]"
                          for g, lo, hi in zip(c["gmean"], c["lo"], c["hi"]))
        print(f"  {label:26s} {cells}  (runs {c['n']})")

# %%
fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
for row, space in enumerate(("theta", "latent")):
    for col, part in enumerate(("total", "noise_only")):
        ax = axes[row, col]
        claims.plot_curves(ax, own[(space, part)], "median", log=True)
        ax.set_title(f"{'θ' if space == 'theta' else 'latent'}: {part.replace('_', ' ')}, "
                     "own trajectory", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("tr Cov of one draw (median, 95% CI)")
    ax = axes[row, 2]
    for part, ls in (("total", "-"), ("noise_only", "--")):
        for label, c in paired[(space, part)].items():
            ax.plot(c["step"], c["gmean"], "o" + ls, ms=3, color=claims.COLOURS.get(label, "grey"),
                    label=f"{label}, {part.replace('_', ' ')}")
            ax.fill_between(c["step"], c["lo"], c["hi"], color=claims.COLOURS.get(label, "grey"),
                            alpha=0.15, lw=0)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_title(f"{'θ' if space == 'theta' else 'latent'}: over SDS on the same θ and draws",
                 fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("tr Cov / SDS's (geometric mean, 95% CI)")
    ax.legend(fontsize=6)
axes[0, 0].legend(fontsize=7)
fig.suptitle("Fig. 5 measured: gradient variance along training "
             f"({'smoke' if smoke else 'H200, 8 prompts, seeds 0-2 (partial), 500 steps'})",
             fontsize=10)
fig.tight_layout()
data = {
    **claims.provenance(path, meta),
    "command": meta.get("command"), "note": meta.get("budget_note"),
    "own": {f"{s}/{p}": c for (s, p), c in own.items()},
    "paired": {f"{s}/{p}": c for (s, p), c in paired.items()},
}
savefig(fig, "fig41_variance_along_training", out_dir=out_dir, notebook=NOTEBOOK,
        parameters=parameters, seed=seed, data=data)
plt.show()

# %% [markdown]
# ## Takeaway
#
# (Committed H200 sweep; every number with its interval is in
# `figures/fig41_variance_along_training.json`.)
#
# - **The paper's ordering does not appear.** On their own trajectories the methods'
#   θ-variances overlap at every checkpoint (at step 500: SDS median 3.1·10⁴, SSD 3.7·10⁴, VSD
#   2.2·10⁴, intervals spanning a factor of 2–4): θ-to-θ spread hides any estimator effect. In
#   latent space the order is the reverse of the paper's: SSD's variance is about twice the
#   others' at every checkpoint (step 500: 200 against SDS 93, VSD 103), whose intervals overlap.
# - **Paired at the same θ, SSD is above SDS, not below**: its θ-variance is 1.04–1.32× SDS's
#   at the five checkpoints (1.11 [1.09, 1.13]× at step 500), its latent variance 1.6–3.1×
#   (noise only 1.9–4.3×). Its depth baseline φ is small, so it subtracts less of ε than SDS.
# - **VSD ≈ SDS** in total (θ: 0.96–1.04×, 4 of 5 intervals include 1; latent 0.96–1.02×),
#   though its θ noise-only part is 1.09–1.41× SDS's; and the
#   **SDS + μ(t) + stratified** estimator is the only one below SDS in latent space
#   (0.93–0.97×, noise only 0.87–0.95×); in θ it is 1.00–1.01×.
