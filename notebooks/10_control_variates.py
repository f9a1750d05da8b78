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
# Where this leads: SDS's gradient $\omega(t)(\hat\varepsilon - \varepsilon)$ is exactly such an
# estimate, with target $\hat\varepsilon$ and control variate $\varepsilon$ at $\mu = 1$ (notebook 11
# derives it; the maths is in [docs/maths.md](../docs/maths.md) §2.1–2.3).
#
# **Exercise** (`exercises=True`): the two lines that form $\mu^*$ and $f - \mu^* h$ are blanked;
# write them, and the asserts below them check your answer against `sdlib`.
#
# **Runtime** (2-core CPU, papermill): default ≈ 7 s; `smoke=True` ≈ 9 s (papermill start-up dominates).
#
# **sdlib modules**: `sdlib.control_variates`, `sdlib.variance`, `sdlib.figures`.

# %% tags=["parameters"]
seed: int = 0  # random seed for everything
device: str = "cpu"  # torch device
smoke: bool = False  # tiny sizes for CI (under 60 s)
out_dir: str = ""  # figures + sidecars; empty: a scratch folder (outputs/figures), never figures/
n_samples: int = 20000  # Monte-Carlo samples per estimate
n_repeats: int = 200  # independent estimates for the spread of the estimator
a: float = 1.0  # exponent of the target exp(a X) with X standard normal
n_grid: int = 81  # coefficients on the variance-vs-mu parabola
exercises: bool = False  # blank the key lines for a classroom exercise (the asserts check them)

# %%
import math

import ipywidgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from sdlib.control_variates import apply_control_variate, optimal_coefficient
from sdlib.figures import resolve_out_dir, savefig
from sdlib.variance import variance_report

parameters = dict(seed=seed, device=device, smoke=smoke, out_dir=out_dir, n_samples=n_samples,
                  n_repeats=n_repeats, a=a, n_grid=n_grid, exercises=exercises)
out_dir = str(resolve_out_dir(out_dir))  # "" -> outputs/figures; `make figures` writes figures/
if smoke:
    n_samples, n_repeats, n_grid = 2000, 40, 21
gen = torch.Generator(device=device).manual_seed(seed)
dtype = torch.float64
true_mean = math.exp(a * a / 2)  # E[exp(aX)] for X ~ N(0, 1)

# %% [markdown]
# ## One estimate, with and without a control variate
#
# $f(X) = e^{aX}$ and $h(X) = X$ (zero mean, correlated with $f$). The coefficient in two
# lines, checked against `sdlib`:

# %%
X = torch.randn(n_samples, 1, generator=gen, dtype=dtype, device=device)
f, h = torch.exp(a * X), X
if exercises:  # EXERCISE: mu* = E[f h] / E[h^2] (h has mean zero), then the controlled samples
    mu = controlled = None  # <- your two lines here
else:
    mu = (f * h).mean() / (h * h).mean()  # mu* = E[f h] / E[h^2]  (h has mean zero)
    controlled = f - mu * h  # f - mu h: same mean, smaller spread
assert mu is not None and controlled is not None, "exercise: write mu and controlled above"
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
#
# Fitting $\mu^*$ on the very sample it is tested on makes the ratio equal $1-\hat\rho^2$ by
# algebra (an identity, not evidence). So $\mu^*$ is fitted on a **held-out** batch of the same
# size and the variance measured on a fresh one: the points then scatter around the curve by
# the sampling error of $\mu^*$ alone.

# %%
def target(kind: str, value: float, x: torch.Tensor) -> torch.Tensor:
    """f_rho = rho x + sqrt(1 - rho^2) Z (gaussian) or f = exp(b x), for samples x [N, 1]."""
    if kind == "gaussian":
        z = torch.randn(x.shape, generator=gen, dtype=dtype, device=device)
        return value * x + math.sqrt(1 - value * value) * z
    return torch.exp(value * x)


law_rows = []
for kind, value in [("gaussian", r) for r in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)] + [
        ("exp", b) for b in (0.25, 0.5, 1.0, 1.5)]:
    X_fit = torch.randn(n_samples, 1, generator=gen, dtype=dtype, device=device)  # held out
    mu_fit = optimal_coefficient(target(kind, value, X_fit), X_fit, centered=True)
    X_test = torch.randn(n_samples, 1, generator=gen, dtype=dtype, device=device)
    fr = target(kind, value, X_test)
    rho_hat = float(torch.corrcoef(torch.cat([fr, X_test], 1).T)[0, 1])
    ratio = float(apply_control_variate(fr, X_test, mu_fit).var() / fr.var())
    name = kind if kind == "gaussian" else f"exp({value}X)"
    law_rows.append({"kind": name, "rho": rho_hat, "var_ratio": ratio,
                     "one_minus_rho2": 1 - rho_hat**2, "mu_held_out": float(mu_fit)})
    print(f"{name:10s} rho={rho_hat:6.3f}  var ratio {ratio:.4f}  1-rho^2 {1 - rho_hat**2:.4f}")
max_law_err = max(abs(r["var_ratio"] - r["one_minus_rho2"]) for r in law_rows)
# the error of a held-out mu is second order: Var ratio - (1 - rho^2) = (mu - mu*)^2 Var h / Var f
assert max_law_err < (0.05 if smoke else 0.01), max_law_err
print(f"largest |ratio - (1 - rho^2)| with mu* from a held-out batch: {max_law_err:.2e}")

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
ax.set_xlabel("estimate of E[f]")
ax.set_ylabel("count")
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
ax.set_title("(c) the 1 − ρ² law (μ* from a held-out batch)")
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
# (a) The variance is the parabola of the formula, lowest at $\mu^*$. (b) The control variate
# narrows the spread of the estimate without moving its centre. (c) With $\mu^*$ fitted on a
# held-out batch the points still lie on $1-\rho^2$: a control variate helps exactly as much as
# it correlates with the target. Note $\mu = 1$ (the value SDS uses implicitly for its control
# variate $\varepsilon$) is not special.

# %% [markdown]
# ## Try it: a slider for $\mu$
#
# In Jupyter, move the slider. A rendered or headless notebook has no kernel behind the widget,
# so the cell also draws a static frame (μ = 1 and μ = μ*) into its output.

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
# the static frame: what the slider shows at mu = 1 and at mu*, in the cell's own output
fig_s, axes_s = plt.subplots(1, 2, figsize=(11, 3), sharey=True)
for ax_s, mu_value in zip(axes_s, (1.0, mu_star)):
    g = apply_control_variate(f, h, mu_value)
    ax_s.hist(f[:, 0], bins=80, alpha=0.5, density=True, label=f"f, var {float(f.var()):.3f}")
    ax_s.hist(g[:, 0], bins=80, alpha=0.5, density=True,
              label=f"f − {mu_value:.2f} h, var {float(g.var()):.3f}")
    ax_s.set(xlim=(-4, 8), xlabel="value of one sample", title=f"static frame: μ = {mu_value:.2f}")
    ax_s.legend(fontsize=8)
axes_s[0].set_ylabel("density")
plt.show()

# %% [markdown]
# ## Takeaway
#
# With the full parameters (`figures/fig10_control_variates.json`: N = 20,000, 200 repeats,
# seed 0): subtracting $\mu^* h$ with $\mu^* = 1.61$ (exact $a e^{a^2/2} = 1.649$) cut the
# per-sample variance of $f = e^X$ from 4.59 to 1.94 and the spread of the estimate of
# $E[e^X] = 1.6487$ over 200 repeats from 0.0154 to 0.0099, as $1 - \rho^2 = 0.45$
# ($\rho = 0.74$) predicts; with $\mu^*$ fitted on held-out batches, twelve targets from
# $\rho = 0$ to $0.99$ met the $1-\rho^2$ law to within $5\cdot10^{-4}$. A zero-mean $h$ never
# moves the mean; it removes the part of $f$ it can predict. The printed lines above give this
# run's numbers; notebook 11 builds $h$ for score distillation.
