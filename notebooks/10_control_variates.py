# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 — Control variates
#
# **What it shows**: the idea SteinDreamer (arXiv 2401.00604) builds on. A Monte-Carlo
# estimate of $\mathbb{E}[f(X)]$ stays unbiased when we subtract $\mu\,h(X)$ for any
# zero-mean $h$; its variance is a parabola in $\mu$ with minimum at
# $\mu^* = \mathrm{Cov}(f,h)/\mathrm{Var}(h)$, where it equals $\mathrm{Var}(f)(1-\rho^2)$.
# We check the parabola, the optimal coefficient and the $1-\rho^2$ law numerically.
#
# **Runtime** (2-core CPU, papermill): default ≈ 7 s; `smoke=True` ≈ 9 s (papermill start-up dominates).
#
# **sdlib modules**: `sdlib.control_variates`, `sdlib.variance`, `sdlib.figures`.

# %% tags=["parameters"]
seed: int = 0  # random seed for everything
device: str = "cpu"  # torch device
smoke: bool = False  # tiny sizes for CI (under 60 s)
out_dir: str = "../figures"  # where figures and sidecars are written
n_samples: int = 20000  # Monte-Carlo samples per estimate
n_repeats: int = 200  # independent estimates for the spread of the estimator
a: float = 1.0  # exponent of the target exp(a X) with X standard normal
n_grid: int = 81  # coefficients on the variance-vs-mu parabola

# %%
import math

import ipywidgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from sdlib.control_variates import apply_control_variate, optimal_coefficient
from sdlib.figures import savefig
from sdlib.variance import variance_report

parameters = dict(seed=seed, device=device, smoke=smoke, out_dir=out_dir, n_samples=n_samples,
                  n_repeats=n_repeats, a=a, n_grid=n_grid)
if smoke:
    n_samples, n_repeats, n_grid = 2000, 40, 21
gen = torch.Generator(device=device).manual_seed(seed)
dtype = torch.float64
true_mean = math.exp(a * a / 2)  # E[exp(aX)] for X ~ N(0, 1)

# %% [markdown]
# ## One estimate, with and without a control variate
#
# $f(X) = e^{aX}$ and $h(X) = X$ (zero mean, correlated with $f$). The coefficient in three
# lines, checked against `sdlib`:

# %%
X = torch.randn(n_samples, 1, generator=gen, dtype=dtype, device=device)
f, h = torch.exp(a * X), X
mu = (f * h).mean() / (h * h).mean()  # mu* = E[f h] / E[h^2]  (h has mean zero)
controlled = f - mu * h  # f - mu h: same mean, smaller spread
assert torch.allclose(mu, optimal_coefficient(f, h))
assert torch.allclose(controlled, apply_control_variate(f, h, optimal_coefficient(f, h)))
print(f"true {true_mean:.4f}   plain {float(f.mean()):.4f} ± {float(f.std() / n_samples**0.5):.4f}"
      f"   controlled {float(controlled.mean()):.4f} ± "
      f"{float(controlled.std() / n_samples**0.5):.4f}   mu* = {float(mu):.3f}"
      f" (exact a e^(a^2/2) = {a * true_mean:.3f})")

# %% [markdown]
# ## Variance against the coefficient: a parabola
#
# $\mathrm{Var}(f - \mu h) = \mathrm{Var} f - 2\mu\,\mathrm{Cov}(f,h) + \mu^2\mathrm{Var}\,h$.
# We also repeat the whole estimate `n_repeats` times to see the spread of the estimator
# itself, with and without the control variate.

# %%
mus = torch.linspace(-1.0, 2.0 * a * true_mean + 1.0, n_grid, dtype=dtype)
var_of_mu = torch.stack([(f - m * h).var() for m in mus])
mu_star = float(optimal_coefficient(f, h, centered=True))
plain_est, cv_est = [], []
for _ in range(n_repeats):
    Xr = torch.randn(n_samples, 1, generator=gen, dtype=dtype, device=device)
    fr = torch.exp(a * Xr)
    plain_est.append(float(fr.mean()))
    cv_est.append(float(apply_control_variate(fr, Xr, optimal_coefficient(fr, Xr)).mean()))
plain_est, cv_est = torch.tensor(plain_est), torch.tensor(cv_est)
print(f"spread of the estimate over {n_repeats} repeats: plain {float(plain_est.std()):.5f}, "
      f"controlled {float(cv_est.std()):.5f}")

# %% [markdown]
# ## The $1-\rho^2$ law
#
# Build targets with a chosen correlation to $h = X$: $f_\rho = \rho X + \sqrt{1-\rho^2}\,Z$,
# and, non-Gaussian, $f = e^{bX}$ for several $b$ (its $\rho$ measured). At $\mu^*$ the
# variance ratio should sit on the curve $1-\rho^2$.

# %%
law = []
for rho in [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]:
    Z = torch.randn(n_samples, 1, generator=gen, dtype=dtype, device=device)
    fr = rho * X + math.sqrt(1 - rho * rho) * Z
    law.append(("gaussian", float(torch.corrcoef(torch.cat([fr, X], 1).T)[0, 1]), fr))
for b in [0.25, 0.5, 1.0, 1.5]:
    fr = torch.exp(b * X)
    law.append((f"exp({b}X)", float(torch.corrcoef(torch.cat([fr, X], 1).T)[0, 1]), fr))
law_rows = []
for kind, rho_hat, fr in law:
    ratio = float(apply_control_variate(fr, X, optimal_coefficient(fr, X, centered=True)).var()
                  / fr.var())
    law_rows.append({"kind": kind, "rho": rho_hat, "var_ratio": ratio,
                     "one_minus_rho2": 1 - rho_hat**2})
    print(f"{kind:10s} rho={rho_hat:6.3f}  var ratio {ratio:.4f}  1-rho^2 {1 - rho_hat**2:.4f}")
max_law_err = max(abs(r["var_ratio"] - r["one_minus_rho2"]) for r in law_rows)

# %%
rep_plain = variance_report(f)
rep_cv = variance_report(controlled)
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ax = axes[0]
ax.plot(mus, var_of_mu, label="Var(f − μh), measured")
ax.axvline(mu_star, color="tab:red", ls="--", label=f"μ* = {mu_star:.3f}")
ax.axvline(1.0, color="0.6", ls=":", label="μ = 1")
ax.set_xlabel("μ")
ax.set_ylabel("variance per sample")
ax.set_title(f"(a) variance is a parabola in μ (f = exp({a}X), h = X)")
ax.legend(fontsize=8)
ax = axes[1]
bins = torch.linspace(float(min(plain_est.min(), cv_est.min())),
                      float(max(plain_est.max(), cv_est.max())), 40)
ax.hist(plain_est, bins=bins, alpha=0.6, label=f"plain, sd {float(plain_est.std()):.4f}")
ax.hist(cv_est, bins=bins, alpha=0.6, label=f"with CV, sd {float(cv_est.std()):.4f}")
ax.axvline(true_mean, color="k", lw=1, label="true mean")
ax.set_title(f"(b) {n_repeats} estimates of E[f], N={n_samples} each")
ax.legend(fontsize=8)
ax = axes[2]
rr = torch.linspace(0, 1, 101)
ax.plot(rr, 1 - rr**2, "k-", lw=1, label="1 − ρ²")
for kind in ["gaussian", "exp"]:
    pts = [r for r in law_rows if r["kind"].startswith(kind)]
    ax.plot([r["rho"] for r in pts], [r["var_ratio"] for r in pts], "o", label=kind + " targets")
ax.set_xlabel("ρ(f, h)")
ax.set_ylabel("Var(f − μ*h) / Var(f)")
ax.set_title("(c) the 1 − ρ² law")
ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "fig10_control_variates", out_dir=out_dir, notebook="10_control_variates.ipynb",
        parameters=parameters, seed=seed,
        data={"true_mean": true_mean, "mu_star": mu_star, "mu_star_exact": a * true_mean,
              "plain": rep_plain.to_dict(), "controlled": rep_cv.to_dict(),
              "estimate_sd_plain": float(plain_est.std()), "estimate_sd_cv": float(cv_est.std()),
              "one_minus_rho2_law": law_rows, "max_abs_law_error": max_law_err})

# %% [markdown]
# ![](../figures/fig10_control_variates.png)
#
# At $\mu^*$ the points lie on $1-\rho^2$ (up to floating point: with the sample
# covariance coefficient the identity is exact on the sample). Note $\mu = 1$ — the value SDS
# uses implicitly for its control variate $\varepsilon$ — is not special.

# %% [markdown]
# ## Try it: a slider for $\mu$
#
# In Jupyter, move the slider; headless runs build the widget and show one static frame.

# %%
def show_mu(mu_value: float = 1.0):
    """Histogram of f and f - mu h for one coefficient."""
    g = apply_control_variate(f, h, mu_value)
    fig_w, ax_w = plt.subplots(figsize=(6, 3))
    ax_w.hist(f[:, 0], bins=80, alpha=0.5, density=True, label=f"f, var {float(f.var()):.3f}")
    ax_w.hist(g[:, 0], bins=80, alpha=0.5, density=True,
              label=f"f − {mu_value:.2f} h, var {float(g.var()):.3f}")
    ax_w.set_xlim(-4, 8)
    ax_w.legend(fontsize=8)
    plt.show()
    plt.close(fig_w)


widget = ipywidgets.interactive(show_mu, mu_value=ipywidgets.FloatSlider(
    value=1.0, min=-1.0, max=4.0, step=0.05, description="μ"))
display(widget)
