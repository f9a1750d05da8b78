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
# # 40 — Where the variance lives in 3-D, and what a control variate can reach
#
# **Question** (issue 11; SteinDreamer, arXiv 2401.00604, §4): SSD subtracts a Stein control
# variate $\mu\,h$, $h = \varepsilon\,\phi(x_t) - \sigma_t\nabla_{x_t}\phi(x_t)$, from the noise
# prediction. A control variate on $\varepsilon$ can only remove the variance that comes from
# $\varepsilon$. How much of a score-distillation gradient's variance is that, at a real θ of a
# text-to-3D run, and how much of it do SDS, SSD and VSD remove?
#
# **Design** (`sdlib.gradient_variance.paired_gradients`, `sdlib.decomposition`): at the θ each
# run reached after its last step (500 steps, ShapeZoo preset, 8 prompts, seed 0: 32 θs, one per
# prompt × method), a crossed design of **6 cameras × 4 timesteps × 8 noises** (192 draws). Every
# estimator sees the *same* draws (one render and one UNet call per draw; they differ only in
# what they subtract), so their ratios are paired. By the law of total variance the trace of the
# covariance of one draw's gradient splits into the parts between cameras, between timesteps,
# their interaction, and **noise only** (within a camera × timestep cell): only the last is
# within reach of a control variate on ε (notebook 13 shows the same split on the 2-D toy,
# with exact answers). We measure it for the θ-gradient (a 65,536-dimensional count-sketch of the
# hash grid and MLP, unbiased for squared norms) and for the latent gradient.
#
# Estimators: plain Monte Carlo $\omega\hat\varepsilon$ (nothing subtracted), SDS
# ($\omega(\hat\varepsilon - \varepsilon)$: the Stein control variate with $\phi \equiv 1$,
# $\mu \equiv 1$), SSD with the paper's depth baseline and $\mu \equiv 1$, and each run's *own*
# estimator with its learned state (SSD's channel μ after 500 steps, VSD's LoRA, the
# SDS + μ(t) + stratified combination of issue 12). And an **oracle**: the best scalar
# coefficient on ε per (camera, timestep) cell, fitted on half the noises and applied to the
# other half (cross-fitted): what any coefficient on SDS's control variate could gain.
#
# **Data**: the committed H200 sweep `notes/claims_h200/runs.json.gz` (command, machine and the
# shipped priors' hashes in its `meta`). With `smoke=True` a tiny sweep runs on the CPU instead
# (random 16² priors, 4 steps: it checks the machinery, not the science).
#
# **Runtime**: default ≈ 10 s (reading and bootstrapping); `smoke=True` ≈ 20 s on a 2-core CPU.
#
# **sdlib modules**: `sdlib.claims`, `sdlib.decomposition`, `sdlib.gradient_variance`,
# `sdlib.figures`; the sweep: `scripts/claims_sweep.py`, `scripts/gpu_claims.sh`.

# %% tags=["parameters"]
seed: int = 0  # seed of the bootstrap resampling
device: str = "cpu"  # unused: the probes ran on the GPU; reading them needs no device
smoke: bool = False  # run a tiny CPU sweep instead of reading the committed one
out_dir: str = ""  # figures + sidecars; empty: a scratch folder (outputs/figures), never figures/
sweep: str = ""  # a sweep folder or compact file; empty: the committed H200 sweep (or smoke's)
n_boot: int = 2000  # bootstrap resamples of the intervals

# %%
from sdlib.figures import resolve_out_dir

out_dir = str(resolve_out_dir(out_dir))  # "" -> outputs/figures; `make figures` writes figures/

import math

import matplotlib.pyplot as plt
import numpy as np

from sdlib import claims
from sdlib.figures import savefig

NOTEBOOK = "40_variance_decomposition.ipynb"
parameters = dict(seed=seed, device=device, smoke=smoke, out_dir=out_dir, sweep=sweep,
                  n_boot=n_boot)
if smoke:
    n_boot = 200
path, runs, meta = claims.open_sweep(sweep, smoke)
full = [r for r in runs if any(v.get("kind") == "full" for v in r.variance)]
print(f"{path.name}: {len(runs)} runs, {len(full)} with the full probe; "
      f"priors {claims.priors_digest(meta)}; {meta.get('machine', 'this machine')}")

# %% [markdown]
# ## 1. SDS's variance, split
#
# Fractions of SDS's total $\operatorname{tr}\mathrm{Cov}$ per part, mean over the θs with a 95%
# bootstrap interval (θs resampled). The parts are unbiased estimates (random-effects ANOVA), so
# a small part can come out slightly negative.

# %%
tables = {space: claims.decomposition_table(runs, space, n_boot=n_boot)
          for space in ("theta", "latent")}
for space, tab in tables.items():
    print(f"{space}: SDS's parts over its total ({tab['n_runs']} θs)")
    for part, ci in tab["fractions"].items():
        print(f"  {part:18s} {ci}")

# %% [markdown]
# ## 2. What each estimator leaves, against SDS on the same draws
#
# Geometric mean over θs of the paired ratio $\operatorname{tr}\mathrm{Cov}_\text{est} /
# \operatorname{tr}\mathrm{Cov}_\text{SDS}$ (total and noise only); below 1 is less variance than
# SDS. `own:<method>` is the run's own estimator at its own θ (8 θs each). The oracle row is the
# cross-fitted per-cell best coefficient's noise-only part over SDS's noise-only part.

# %%
for space, tab in tables.items():
    print(f"{space}: ratio to SDS, total | noise only")
    for name, parts in tab["ratios"].items():
        print(f"  {name:32s} {parts['total']} | {parts['noise_only']}")
    print(f"  {'oracle coefficient per cell':32s} noise only {tab['oracle']}")

# %% [markdown]
# ## 3. The best coefficient on ε depends on t
#
# SDS subtracts ε with coefficient 1 at every t. The per-cell oracle coefficient (latent space),
# pooled over the θs, shows what a per-timestep coefficient μ(t) (issue 12) should learn.

# %%
mu = claims.oracle_mu_table(runs, "latent")
ts = np.unique(mu["t"])
for t in ts:
    sel = mu["t"] == t
    print(f"t = {t:4.0f}: oracle μ = {mu['mu'][sel].mean():.2f} "
          f"(spread over θs {mu['mu'][sel].std():.2f}, within-θ sd {mu['mu_sd'][sel].mean():.2f})")

# %% [markdown]
# ## 4. Per timestep: where the variance comes from, and where a coefficient on ε matters
#
# At each probed t (the same 4 t's at every θ): SDS's noise-only share of its variance at that
# t, that t's share of the total over the probed t's, and plain Monte Carlo's and SSD (μ ≡ 1)'s
# noise-only parts over SDS's at that t.

# %%
per_t = {space: claims.per_t_table(runs, space, n_boot=min(n_boot, 1000))
         for space in ("theta", "latent")}
for space, table in per_t.items():
    print(f"{space}:")
    for t, row in table.items():
        cells = "; ".join(f"{k} {v}" for k, v in row.items())
        print(f"  t = {t:4d}: {cells}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
ax = axes[0]
parts = list(claims.PARTS)
names = {"between_cameras": "between cameras", "between_timesteps": "between timesteps",
         "interaction": "camera × timestep", "noise_only": "noise only (ε)"}
colours = ["#8c564b", "#e377c2", "#bcbd22", "#17becf"]
for i, space in enumerate(("theta", "latent")):
    bottom = 0.0
    for part, col in zip(parts, colours):
        v = max(tables[space]["fractions"][part].estimate, 0.0)
        ax.bar(i, v, bottom=bottom, color=col, label=names[part] if i == 0 else None)
        ax.text(i, bottom + v / 2, f"{v:.2f}", ha="center", va="center", fontsize=8)
        bottom += v
ax.set_xticks([0, 1], ["θ (NeRF)", "latent"])
ax.set_ylabel("fraction of SDS's tr Cov")
ax.set_title("(a) where SDS's variance lives")
ax.set_xlim(-0.6, 2.6)
ax.legend(fontsize=7, loc="center right")

ax = axes[1]
rows = [n for n in tables["theta"]["ratios"]]
y = np.arange(len(rows))
for k, (space, marker) in enumerate((("theta", "o"), ("latent", "s"))):
    tab = tables[space]
    for j, name in enumerate(rows):
        for part, fill in (("total", True), ("noise_only", False)):
            ci = tab["ratios"][name][part]
            off = (k * 2 + (part == "noise_only")) * 0.12 - 0.18
            col = "C0" if space == "theta" else "C1"
            ax.errorbar(ci.estimate, j + off,
                        xerr=None if math.isnan(ci.lo) else [[ci.estimate - ci.lo],
                                                             [ci.hi - ci.estimate]],
                        fmt=marker, color=col, mfc=col if fill else "white", ms=5,
                        label=f"{space}, {part.replace('_', ' ')}" if j == 0 else None)
    o = tab["oracle"]
    ax.errorbar(o.estimate, len(rows) + (k * 0.24 - 0.12),
                xerr=None if math.isnan(o.lo) else [[o.estimate - o.lo], [o.hi - o.estimate]],
                fmt=marker, color="C0" if space == "theta" else "C1", mfc="white", ms=5)
ax.set_yticks(list(y) + [len(rows)], rows + ["oracle μ per cell\n(noise only)"], fontsize=7)
ax.axvline(1.0, color="k", lw=0.8, ls=":")
ax.set_xscale("log")
ax.set_xlabel("tr Cov / SDS's, same draws (geometric mean, 95% CI)")
ax.set_title("(b) each estimator against SDS")
ax.legend(fontsize=6, loc="lower right")

ax = axes[2]
for t in ts:
    sel = mu["t"] == t
    ax.scatter(np.full(sel.sum(), t) + np.random.default_rng(seed).normal(0, 8, sel.sum()),
               mu["mu"][sel], s=10, color="C3", alpha=0.6)
ax.axhline(1.0, color="k", lw=0.8, ls=":", label="SDS's coefficient")
ax.set_xlabel("timestep t")
ax.set_ylabel("best coefficient on ε (per cell)")
ax.set_title("(c) the oracle coefficient against t (latent)")
ax.legend(fontsize=7)
fig.suptitle(f"Variance decomposition at frozen θs ({tables['theta']['n_runs']} θs, "
             f"{'smoke' if smoke else 'H200 sweep, 500 steps, seed 0'})", fontsize=10)
fig.tight_layout()


data = {
    **claims.provenance(path, meta),
    "command": meta.get("command"), "design": "6 cameras x 4 timesteps x 8 noises at step 500",
    **{f"{space}_fractions": {p: c.as_dict() for p, c in tab["fractions"].items()}
       for space, tab in tables.items()},
    **{f"{space}_ratios": {n: {p: c.as_dict() for p, c in d.items()}
                           for n, d in tab["ratios"].items()}
       for space, tab in tables.items()},
    **{f"{space}_oracle": tab["oracle"].as_dict() for space, tab in tables.items()},
    "oracle_mu_by_t": {str(int(t)): float(mu["mu"][mu["t"] == t].mean()) for t in ts},
    **{f"{space}_per_t": {str(t): {k: v.as_dict() for k, v in row.items()}
                          for t, row in tab.items()}
       for space, tab in per_t.items()},
}
savefig(fig, "fig40_decomposition", out_dir=out_dir, notebook=NOTEBOOK, parameters=parameters,
        seed=seed, data=data)
plt.show()

# %% [markdown]
# ## Takeaway
#
# (The committed H200 sweep: 32 θs after 500 steps, 8 prompts × {SDS, SSD, VSD,
# SDS + μ(t) + stratified}, seed 0; `figures/fig40_decomposition.json` has every number.)
#
# - **Half of SDS's θ-variance is not noise.** Noise only is 0.54 [0.46, 0.62] of SDS's total
#   θ-variance; between cameras 0.23, camera × timestep 0.17, between timesteps 0.06. In latent
#   space noise is 0.64. No control variate on ε touches the other 36–46%; stratified cameras
#   and timesteps (issue 12) are the tools for that part.
# - **SDS's ε already removes most of what a control variate can.** Plain Monte Carlo
#   $\omega\hat\varepsilon$ has 1.41× SDS's θ-variance (9.9× its latent noise-only variance). The
#   best coefficient per cell would leave 0.79 [0.75, 0.84]× SDS's θ noise-only part
#   (0.90× in latent space): at most ~10% of the total is left to gain by any coefficient on ε.
# - **The paper's depth baseline adds variance here.** SSD with μ ≡ 1 has 1.22× SDS's
#   θ-variance (3.6× in latent space), and SSD with its learned channel μ 1.11 [1.09, 1.14]×
#   (2.6× latent). Its $\phi = 1 - \text{Pearson}$ is small, so $\mu h \approx \mu\phi\varepsilon$
#   subtracts only a fraction of ε, and what SDS removed comes back. VSD's LoRA gives
#   1.08× (θ) and 0.98× (latent): no reduction either.
# - **Per t**: the θ-variance comes from large t (t = 743 carries 0.60 of the probed total,
#   t = 33 only 0.0004). At t = 33, SDS's −ε *adds* noise: plain Monte Carlo has 0.46× its
#   noise part and SSD with μ ≡ 1 (a smaller effective coefficient, φ < 1) 0.32×; at t ≥ 375
#   they have 1.4–3.0× SDS's. A better coefficient at small t is real but moves almost none of
#   the total.
# - The oracle coefficient climbs with t, ≈ 0.2 at t = 33, 0.8 at t = 375, ≈ 1 above t = 650:
#   a μ(t) (issue 12; the SDS + μ(t) + stratified run) gets 0.93× SDS's latent variance, 1.01×
#   in θ: at these θs the large-t draws dominate the θ-variance, where SDS's coefficient 1 is
#   already right.
