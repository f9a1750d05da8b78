r"""Where a gradient estimator's variance lives: cameras, timesteps, or the noise.

A score-distillation gradient $g(c, t, \varepsilon) \in \mathbb{R}^D$ at a frozen $\theta$ has
three independent sources of randomness: the camera $c$, the timestep $t$ and the noise
$\varepsilon$. A control variate on $\varepsilon$ can only remove variance that comes from
$\varepsilon$. The **law of total variance** splits the trace of the covariance of one sample,

$$\operatorname{tr}\mathrm{Cov}(g)
  = \underbrace{\mathbb{E}_{c,t}\big[\operatorname{tr}\mathrm{Var}_\varepsilon(g\mid c,t)\big]}
    _{\sigma^2_E:\ \text{noise only (within cells)}}
  + \underbrace{\operatorname{tr}\mathrm{Var}_{c,t}\big(\mathbb{E}[g\mid c,t]\big)}
    _{\text{between cells}},$$

and, because $c$ and $t$ are drawn independently, the between-cell part splits again
(the two-way ANOVA, or Hoeffding, decomposition of $\bar g(c,t) = \mathbb{E}[g\mid c,t]$):

$$\operatorname{tr}\mathrm{Var}_{c,t}(\bar g) = \sigma^2_C + \sigma^2_T + \sigma^2_{CT},\quad
\sigma^2_C = \operatorname{tr}\mathrm{Var}_c\,\mathbb{E}[g\mid c],\
\sigma^2_T = \operatorname{tr}\mathrm{Var}_t\,\mathbb{E}[g\mid t],$$

with $\sigma^2_{CT}$ the camera × timestep interaction.

**Design.** ``g`` has shape ``[K, T, N, D]``: $K$ cameras $c_k$ and $T$ timesteps $t_j$, each
drawn independently (crossed: every camera meets every timestep, one render per camera and
timestep), and $N$ iid noises $\varepsilon_{kjn}$ per cell $(k, j)$. With cell means
$\bar g_{kj}$, camera means $\bar g_{k\cdot}$, timestep means $\bar g_{\cdot j}$, grand mean
$\bar g$, the mean squares

$$\mathrm{MS}_E = \tfrac{\sum_{kjn}\|g_{kjn}-\bar g_{kj}\|^2}{KT(N-1)},\
\mathrm{MS}_{CT} = \tfrac{N\sum_{kj}\|\bar g_{kj}-\bar g_{k\cdot}-\bar g_{\cdot j}+\bar g\|^2}
  {(K-1)(T-1)},\
\mathrm{MS}_C = \tfrac{TN\sum_k\|\bar g_{k\cdot}-\bar g\|^2}{K-1},\
\mathrm{MS}_T = \tfrac{KN\sum_j\|\bar g_{\cdot j}-\bar g\|^2}{T-1}$$

have expectations $\sigma^2_E$, $\sigma^2_E + N\sigma^2_{CT}$,
$\sigma^2_E + N\sigma^2_{CT} + TN\sigma^2_C$ and $\sigma^2_E + N\sigma^2_{CT} + KN\sigma^2_T$
(random-effects model; only uncorrelated effects are needed, not normality, and the noise
variance may differ between cells). Hence the unbiased parts

$$\hat\sigma^2_E = \mathrm{MS}_E,\ \hat\sigma^2_{CT} = \tfrac{\mathrm{MS}_{CT}-\mathrm{MS}_E}{N},\
\hat\sigma^2_C = \tfrac{\mathrm{MS}_C-\mathrm{MS}_{CT}}{TN},\
\hat\sigma^2_T = \tfrac{\mathrm{MS}_T-\mathrm{MS}_{CT}}{KN}.$$

The subtractions are the finite-$N$ corrections: the spread of the cell means
$\bar g_{kj}$ contains $\sigma^2_E/N$ of noise, which is not between-cell variance. The total
is **defined** as the sum of the four parts (so the parts add up exactly); it is an unbiased
estimate of $\operatorname{tr}\mathrm{Cov}(g)$. The plain pooled sample trace
$\frac{1}{KTN-1}\sum\|g_{kjn}-\bar g\|^2$ is reported beside it: under the crossed design it is
biased low by $\approx\operatorname{tr}\mathrm{Var}(\bar g)$ (samples sharing a camera are
correlated), which is small when $K$ and $T$ are not.

**Mean and relative variance.** $\|\bar g\|^2$ overestimates $\|m\|^2$ by
$\operatorname{tr}\mathrm{Var}(\bar g)$. Unbiased: the mean of $\langle\bar g_{kj},
\bar g_{k'j'}\rangle$ over pairs of cells with $k\ne k'$ **and** $j\ne j'$ (independent cell
means; pairs sharing a camera would add $\sigma^2_C$). The relative variance is
$\operatorname{tr}\mathrm{Cov}/\|m\|^2$ (it can be negative or huge when $\|m\|^2$ is not
resolved: read it with its standard error).

Per timestep $t_j$ (conditional on the drawn $t_j$): the noise-only part
$\frac{1}{K(N-1)}\sum_{kn}\|g_{kjn}-\bar g_{kj}\|^2$ and the between-camera part
$\frac{1}{K-1}\sum_k\|\bar g_{kj}-\bar g_{\cdot j}\|^2 - \text{noise}_j/N$.

**Standard errors** by bootstrap: resample cameras and timesteps independently with
replacement (``resample="both"``, Owen's pigeonhole bootstrap for crossed designs), or the $K$
cameras only (``"cameras"``: standard errors *conditional on the drawn timesteps*, right for
per-$t$ questions or timesteps fixed by design, far too small otherwise). Calibration on the
toy's exact Gaussian answers (``scripts/decomposition_calibration.py``, 150 designs each):
with $K, T, N = 8, 6, 16$ and ``"both"``, $|z| > 2$ in 8% (total), 11% (noise only), 15–21%
(between parts) and $|z| > 3$ in 4–17%; with ``"cameras"`` the noise-only part has
$|z| > 3$ in 85%; with $16, 16, 8$ and ``"both"``, $|z| > 2$ in 5–16% and $|z| > 3$ in 1–5%.
The estimates themselves are unbiased (their means match the closed forms). With few
timesteps or cameras, read intervals with Student-$t$ quantiles on $\min(K, T) - 1$ degrees
of freedom. Every quantity is a function of the cell-mean Gram matrix
$G = [\langle\bar g_{kj},\bar g_{k'j'}\rangle]$ and the within-cell sums of squares,
so a replicate costs $O((KT)^2)$, not $O(KTND)$.

Also: :func:`oracle_coefficient`, the best scalar coefficient per cell for an estimator
$f - \mu h$ (what any coefficient could gain), and :func:`efficiency` (variance per UNet
evaluation, variance × seconds per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "CellStats",
    "Decomposition",
    "Efficiency",
    "OracleCoefficient",
    "cell_stats",
    "decompose",
    "decompose_cells",
    "efficiency",
    "oracle_coefficient",
    "paired_ratio",
]

Resample = Literal["cameras", "both"]
"""Bootstrap units: cameras only, or cameras and timesteps independently (pigeonhole)."""


def _check_design(g: Tensor, name: str = "g") -> tuple[int, int, int]:
    if not isinstance(g, Tensor) or g.dim() < 4:
        shape = tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__
        raise ValueError(
            f"{name} must be per-sample gradients [K cameras, T timesteps, N noises, D...], "
            f"got {shape}"
        )
    k, t, n = g.shape[:3]
    if k < 2 or t < 2 or n < 2:
        raise ValueError(
            f"{name} needs K >= 2 cameras, T >= 2 timesteps and N >= 2 noises per cell, "
            f"got K={k}, T={t}, N={n}"
        )
    return k, t, n


@dataclass(frozen=True)
class CellStats:
    """Sufficient statistics of a ``[K, T, N, D]`` design (what :func:`decompose_cells` needs).

    Lets a caller stream: compute one cell's mean and sum of squares as its draws arrive.
    """

    cell_mean: Tensor
    """Cell means ``[K, T, D]`` (float64)."""
    within_ss: Tensor
    """Within-cell sums of squared deviations ``sum_n ||g_kjn - mean_kj||^2``, ``[K, T]``."""
    n: int
    """Noises per cell N."""
    total_ss: float
    """``sum_kjn ||g_kjn - grand mean||^2`` (for the pooled sample trace)."""


def cell_stats(g: Tensor) -> CellStats:
    """Cell means and within-cell sums of squares of ``g [K, T, N, D...]`` in float64.

    Converts one camera at a time to float64, so peak extra memory is ``2 T N D`` floats.
    """
    k, t, n = _check_design(g)
    g = g.reshape(k, t, n, -1)
    means, within = [], []
    for i in range(k):
        gi = g[i].double()
        mi = gi.mean(1)  # [T, D]
        means.append(mi)
        within.append((gi - mi[:, None]).pow(2).sum((1, 2)))
    cell_mean = torch.stack(means)
    within_ss = torch.stack(within)
    grand = cell_mean.mean((0, 1))
    # sum ||g - grand||^2 = within + N sum_kj ||mean_kj - grand||^2
    total_ss = within_ss.sum() + n * (cell_mean - grand).pow(2).sum()
    return CellStats(cell_mean=cell_mean, within_ss=within_ss, n=n, total_ss=float(total_ss))


def _parts_from_gram(gram: Tensor, within: Tensor, n: int, w: Tensor, v: Tensor
                     ) -> dict[str, Tensor]:
    """All trace quantities from the cell-mean Gram ``[K, T, K, T]`` and within SS ``[K, T]``.

    ``w [B, K]`` and ``v [B, T]`` count how often each camera and timestep appears in each of
    ``B`` (bootstrap or jackknife) designs; all ones is the design itself, and the design's
    sizes are ``K = w.sum(1)``, ``T = v.sum(1)``. Every returned scalar is ``[B]`` (per-t
    quantities ``[B, T]``).
    """
    k, t = w.sum(1), v.sum(1)
    gk = torch.einsum("kjkl->kjl", gram)  # <mean_kj, mean_kl>, [K, T, T]
    gt = torch.einsum("kjlj->jkl", gram)  # <mean_kj, mean_lj>, [T, K, K]
    dg = torch.einsum("kjj->kj", gk)  # ||mean_kj||^2
    diag = torch.einsum("bk,kj,bj->b", w, dg, v)
    row = torch.einsum("bk,kjl,bj,bl->b", w, gk, v, v)  # sum_k ||sum_j mean_kj||^2
    col_t = torch.einsum("bk,jkl,bl->bj", w, gt, w)  # ||sum_k mean_kj||^2 per timestep
    col = (col_t * v).sum(1)
    tot = torch.einsum("bk,bj,kjlm,bl,bm->b", w, v, gram, w, v)  # ||sum_kj mean_kj||^2
    grand_sq = tot / (k * t) ** 2
    row_ss = row / t**2 - k * grand_sq  # sum_k ||mean_k. - mean||^2
    col_ss = col / k**2 - t * grand_sq  # sum_j ||mean_.j - mean||^2
    cell_ss = diag - k * t * grand_sq  # sum_kj ||mean_kj - mean||^2
    int_ss = cell_ss - t * row_ss - k * col_ss
    within_t = w @ within  # [B, T]
    ms_e = (within_t * v).sum(1) / (k * t * (n - 1))
    ms_ct = n * int_ss / ((k - 1) * (t - 1))
    ms_c = n * t * row_ss / (k - 1)
    ms_t = n * k * col_ss / (t - 1)
    noise = ms_e
    interaction = (ms_ct - ms_e) / n
    cameras = (ms_c - ms_ct) / (t * n)
    timesteps = (ms_t - ms_ct) / (k * n)
    total = noise + interaction + cameras + timesteps
    # unbiased ||m||^2: mean of <mean_kj, mean_k'j'> over k != k' and j != j'
    mean_sq = (tot - row - col + diag) / (k * (k - 1) * t * (t - 1))
    # per timestep, conditional on t_j (meaningful when v is all ones)
    noise_t = within_t / (k[:, None] * (n - 1))
    cam_t = ((w @ dg) - col_t / k[:, None]) / (k[:, None] - 1) - noise_t / n
    return {
        "total": total, "between_cameras": cameras, "between_timesteps": timesteps,
        "interaction": interaction, "noise_only": noise, "mean_sq_norm": mean_sq,
        "rel_var": total / mean_sq, "noise_rel_var": noise / mean_sq,
        "per_t_noise_only": noise_t, "per_t_between_cameras": cam_t,
        "per_t_total": noise_t + cam_t,
    }


@dataclass(frozen=True)
class Decomposition:
    r"""The law-of-total-variance split of one sample's $\operatorname{tr}\mathrm{Cov}$.

    Every variance is the trace over the ``D`` gradient coordinates for **one** sample
    $(c, t, \varepsilon)$ (not for a mean over the design). ``*_se`` are bootstrap standard
    errors. ``total = between_cameras + between_timesteps + interaction + noise_only`` exactly.
    """

    total: float
    r"""Unbiased $\operatorname{tr}\mathrm{Cov}(g)$ with $c, t, \varepsilon$ all random (the sum
    of the four parts)."""
    total_se: float
    """Bootstrap standard error of ``total``."""
    between_cameras: float
    r"""$\sigma^2_C = \operatorname{tr}\mathrm{Var}_c\,\mathbb{E}[g\mid c]$."""
    between_cameras_se: float
    """Bootstrap standard error."""
    between_timesteps: float
    r"""$\sigma^2_T = \operatorname{tr}\mathrm{Var}_t\,\mathbb{E}[g\mid t]$."""
    between_timesteps_se: float
    """Bootstrap standard error."""
    interaction: float
    r"""$\sigma^2_{CT}$: camera × timestep interaction of the cell means."""
    interaction_se: float
    """Bootstrap standard error."""
    noise_only: float
    r"""$\sigma^2_E = \mathbb{E}_{c,t}\operatorname{tr}\mathrm{Var}_\varepsilon(g\mid c,t)$: all a
    control variate on $\varepsilon$ can act on."""
    noise_only_se: float
    """Bootstrap standard error."""
    pooled_trace_cov: float
    r"""Plain sample $\frac{1}{KTN-1}\sum\|g - \bar g\|^2$ (ignores the design; for comparison)."""
    mean: Tensor
    """Grand mean gradient ``[D]`` (float64, on the input's device)."""
    mean_se: Tensor
    r"""Per-coordinate standard error of ``mean``, $\sqrt{(\mathrm{MS}_C+\mathrm{MS}_T-
    \mathrm{MS}_{CT})/(KTN)}$ (clamped at 0), ``[D]``."""
    mean_sq_norm: float
    r"""Unbiased $\|m\|^2$ (pairs of cells differing in camera and timestep)."""
    mean_sq_norm_se: float
    """Bootstrap standard error."""
    rel_var: float
    r"""$\operatorname{tr}\mathrm{Cov} / \|m\|^2$ with the unbiased $\|m\|^2$."""
    rel_var_se: float
    """Bootstrap standard error."""
    noise_rel_var: float
    r"""``noise_only / mean_sq_norm``."""
    noise_rel_var_se: float
    """Bootstrap standard error."""
    per_t_noise_only: Tensor
    """Noise-only part at each drawn timestep ``[T]`` (conditional on t_j)."""
    per_t_noise_only_se: Tensor
    """Standard error over cameras (camera bootstrap), ``[T]``."""
    per_t_between_cameras: Tensor
    """Between-camera part at each timestep ``[T]`` (noise-corrected)."""
    per_t_total: Tensor
    r"""$\operatorname{tr}\mathrm{Cov}(g\mid t_j)$ = noise only + between cameras, ``[T]``."""
    per_t_total_se: Tensor
    """Standard error over cameras, ``[T]``."""
    shape: tuple[int, int, int, int]
    """``(K, T, N, D)``."""
    n_boot: int
    """Bootstrap replicates."""
    resample: str
    """Bootstrap units ("cameras" or "both")."""
    seed: int
    """Bootstrap seed: two decompositions of the same design with the same seed resample the
    same cameras (and timesteps), so their replicates are paired (:func:`paired_ratio`)."""
    replicates: dict[str, Tensor]
    """Bootstrap replicates ``[n_boot]`` of each scalar (``total``, ``noise_only``, ...)."""

    @property
    def between_cells(self) -> float:
        """``between_cameras + between_timesteps + interaction``."""
        return self.between_cameras + self.between_timesteps + self.interaction

    @property
    def noise_fraction(self) -> float:
        """``noise_only / total``: the most a control variate on the noise could remove."""
        return self.noise_only / self.total

    def to_dict(self, with_mean: bool = False) -> dict:
        """JSON-serialisable dictionary (for figure sidecars), leading with ``total``."""
        out: dict = {}
        for name in ("total", "between_cameras", "between_timesteps", "interaction",
                     "noise_only", "mean_sq_norm", "rel_var", "noise_rel_var"):
            out[name] = getattr(self, name)
            out[name + "_se"] = getattr(self, name + "_se")
        out["between_cells"] = self.between_cells
        out["pooled_trace_cov"] = self.pooled_trace_cov
        for name in ("per_t_noise_only", "per_t_noise_only_se", "per_t_between_cameras",
                     "per_t_total", "per_t_total_se"):
            out[name] = getattr(self, name).tolist()
        out.update(shape=list(self.shape), n_boot=self.n_boot, resample=self.resample,
                   seed=self.seed)
        if with_mean:
            out["mean"] = self.mean.tolist()
            out["mean_se"] = self.mean_se.tolist()
        return out


def _counts(n_boot: int, size: int, gen: torch.Generator) -> Tensor:
    """How often each of ``size`` units is drawn in each of ``n_boot`` resamples, ``[B, size]``."""
    idx = torch.randint(0, size, (n_boot, size), generator=gen)
    out = torch.zeros(n_boot, size, dtype=torch.float64)
    return out.scatter_add_(1, idx, torch.ones(n_boot, size, dtype=torch.float64))


def decompose_cells(
    stats: CellStats, n_boot: int = 200, resample: Resample = "both", seed: int = 0
) -> Decomposition:
    """:func:`decompose` from precomputed :class:`CellStats` (see there)."""
    if resample not in ("cameras", "both"):
        raise ValueError(f"resample must be 'cameras' or 'both', got {resample!r}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    mean_kt = stats.cell_mean
    k, t, d = mean_kt.shape
    n = stats.n
    flat = mean_kt.reshape(k * t, d)
    gram = (flat @ flat.T).reshape(k, t, k, t).cpu()
    within = stats.within_ss.double().cpu()
    ones_k = torch.ones(1, k, dtype=torch.float64)
    ones_t = torch.ones(1, t, dtype=torch.float64)
    est = {key: val[0] for key, val in _parts_from_gram(gram, within, n, ones_k, ones_t).items()}

    # bootstrap: counts of each camera (and timestep) in each resampled design
    gen = torch.Generator().manual_seed(seed)
    w = _counts(n_boot, k, gen)
    v = _counts(n_boot, t, gen) if resample == "both" else ones_t.expand(n_boot, t)
    boots = _parts_from_gram(gram, within, n, w, v)
    # per-t quantities need the timesteps held fixed
    per_t = boots if resample == "cameras" else _parts_from_gram(gram, within, n, w,
                                                                 ones_t.expand(n_boot, t))

    def se(name: str) -> float:
        b = boots[name]
        b = b[torch.isfinite(b)]
        return float(b.std()) if b.numel() > 1 else math.nan

    def se_t(name: str) -> Tensor:
        return per_t[name].std(0)

    # per-coordinate standard error of the grand mean: (MS_C + MS_T - MS_CT) / (KTN)
    grand = mean_kt.mean((0, 1))
    row = mean_kt.mean(1) - grand  # [K, D]
    col = mean_kt.mean(0) - grand  # [T, D]
    inter = mean_kt - grand - row[:, None] - col[None]
    ms_c = n * t * row.pow(2).sum(0) / (k - 1)
    ms_t = n * k * col.pow(2).sum(0) / (t - 1)
    ms_ct = n * inter.pow(2).sum((0, 1)) / ((k - 1) * (t - 1))
    mean_se = ((ms_c + ms_t - ms_ct) / (k * t * n)).clamp_min(0).sqrt()

    scalars = ("total", "between_cameras", "between_timesteps", "interaction", "noise_only",
               "mean_sq_norm", "rel_var", "noise_rel_var")
    f = {s: float(est[s]) for s in scalars}
    return Decomposition(
        total=f["total"], total_se=se("total"),
        between_cameras=f["between_cameras"], between_cameras_se=se("between_cameras"),
        between_timesteps=f["between_timesteps"], between_timesteps_se=se("between_timesteps"),
        interaction=f["interaction"], interaction_se=se("interaction"),
        noise_only=f["noise_only"], noise_only_se=se("noise_only"),
        pooled_trace_cov=stats.total_ss / (k * t * n - 1),
        mean=grand, mean_se=mean_se,
        mean_sq_norm=f["mean_sq_norm"], mean_sq_norm_se=se("mean_sq_norm"),
        rel_var=f["rel_var"], rel_var_se=se("rel_var"),
        noise_rel_var=f["noise_rel_var"], noise_rel_var_se=se("noise_rel_var"),
        per_t_noise_only=est["per_t_noise_only"], per_t_noise_only_se=se_t("per_t_noise_only"),
        per_t_between_cameras=est["per_t_between_cameras"],
        per_t_total=est["per_t_total"], per_t_total_se=se_t("per_t_total"),
        shape=(k, t, n, d), n_boot=n_boot, resample=resample, seed=seed,
        replicates={s: boots[s] for s in scalars},
    )


def paired_ratio(a: Decomposition, b: Decomposition, name: str = "total") -> tuple[float, float]:
    """``a.name / b.name`` and its paired-bootstrap standard error.

    ``a`` and ``b`` must come from the same draws (every estimator on the same (c, t, eps))
    and the same bootstrap (``shape``, ``n_boot``, ``resample``, ``seed``), so replicate ``i``
    of both resampled the same cameras: the ratio's spread then excludes the draws' common
    luck.

    >>> g = torch.randn(4, 3, 8, 5, generator=torch.Generator().manual_seed(0))
    >>> r, se = paired_ratio(decompose(0.5 * g, n_boot=20), decompose(g, n_boot=20))
    >>> round(r, 6), round(se, 6)
    (0.25, 0.0)
    """
    same = (a.shape[:3], a.n_boot, a.resample, a.seed) == (b.shape[:3], b.n_boot, b.resample,
                                                           b.seed)
    if not same:
        raise ValueError(
            "paired_ratio needs decompositions of one design with the same bootstrap: got "
            f"shape {a.shape[:3]} vs {b.shape[:3]}, n_boot {a.n_boot} vs {b.n_boot}, resample "
            f"{a.resample} vs {b.resample}, seed {a.seed} vs {b.seed}"
        )
    if name not in a.replicates:
        raise ValueError(f"name must be one of {sorted(a.replicates)}, got {name!r}")
    ratio = a.replicates[name] / b.replicates[name]
    ratio = ratio[torch.isfinite(ratio)]
    return getattr(a, name) / getattr(b, name), float(ratio.std())


def decompose(
    g: Tensor, n_boot: int = 200, resample: Resample = "both", seed: int = 0
) -> Decomposition:
    r"""Split the variance of per-sample gradients ``g [K, T, N, D...]`` by source.

    Args:
        g: Per-sample gradients of one estimator on a crossed design: ``K`` cameras × ``T``
            timesteps (each drawn independently) × ``N`` iid noises per (camera, timestep)
            cell; trailing dimensions are flattened to ``D``. ``K, T, N >= 2``.
        n_boot: Bootstrap replicates for the standard errors.
        resample: ``"both"`` (cameras and timesteps independently: unconditional standard
            errors) or ``"cameras"`` (conditional on the drawn timesteps; see the module
            docstring). Per-t standard errors always resample cameras only.
        seed: Seed of the bootstrap.

    Returns:
        A :class:`Decomposition`: ``total`` (= the sum of ``between_cameras``,
        ``between_timesteps``, ``interaction``, ``noise_only``), ``pooled_trace_cov``, the
        mean with per-coordinate standard errors, the unbiased ``mean_sq_norm``, ``rel_var``,
        per-t parts, each scalar with a bootstrap ``*_se``.

    >>> g = torch.randn(4, 3, 8, 5, generator=torch.Generator().manual_seed(0))
    >>> d = decompose(g, n_boot=20)
    >>> abs(d.total - (d.between_cells + d.noise_only)) < 1e-9
    True
    """
    return decompose_cells(cell_stats(g), n_boot=n_boot, resample=resample, seed=seed)


@dataclass(frozen=True)
class OracleCoefficient:
    r"""The best scalar coefficient per cell for $f - \mu h$ and the noise-only variance left."""

    mu: Tensor
    r"""Per-cell $\mu^*_{kj} = \langle f-\bar f, h-\bar h\rangle / \|h-\bar h\|^2$, ``[K, T]``."""
    noise_only_f: float
    """Noise-only part of ``f`` alone (mu = 0), as in :class:`Decomposition`."""
    noise_only_in_sample: float
    r"""$\frac{1}{KT}\sum_{kj}\frac{1}{N-1}\big(S_{ff} - S_{fh}^2/S_{hh}\big)$: the variance
    left with $\mu^*$ fitted on the same draws (optimistic)."""
    noise_only_split: float
    """Two-fold cross-fit: mu fitted on one half of a cell's noises, variance of f - mu h
    measured on the other half, averaged both ways (unbiased for a mu fitted on N/2 draws:
    pessimistic by the fitting noise, never optimistic)."""
    per_t_noise_only_f: Tensor
    """Noise-only part of ``f`` per timestep ``[T]``."""
    per_t_in_sample: Tensor
    """``noise_only_in_sample`` per timestep ``[T]``."""
    per_t_split: Tensor
    """``noise_only_split`` per timestep ``[T]``."""

    @property
    def ratio_in_sample(self) -> float:
        """``noise_only_in_sample / noise_only_f``."""
        return self.noise_only_in_sample / self.noise_only_f

    @property
    def ratio_split(self) -> float:
        """``noise_only_split / noise_only_f``."""
        return self.noise_only_split / self.noise_only_f


def _centred_moments(f: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-cell centred sums S_ff, S_fh, S_hh over noises and coordinates, each ``[T]``."""
    fc = f - f.mean(1, keepdim=True)
    hc = h - h.mean(1, keepdim=True)
    return fc.pow(2).sum((1, 2)), (fc * hc).sum((1, 2)), hc.pow(2).sum((1, 2))


def oracle_coefficient(f: Tensor, h: Tensor) -> OracleCoefficient:
    r"""What the best per-cell scalar coefficient could gain for the estimator $f - \mu h$.

    For each cell $(k, j)$ (fixed camera and timestep), over its $N$ noises,
    $\mu^* = \langle f-\bar f, h-\bar h\rangle/\|h-\bar h\|^2$ minimises
    $\operatorname{tr}\mathrm{Var}_\varepsilon(f - \mu h\mid c,t)$; the variance left is
    $(S_{ff} - S_{fh}^2/S_{hh})/(N-1)$. That in-sample figure is optimistic (μ* is fitted to
    the same draws it is scored on; for $D \gg 1$ the optimism is small), so a two-fold
    cross-fitted figure is reported beside it (needs ``N >= 4``).

    For SDS, ``f`` is $\omega\hat\varepsilon$ and ``h`` is $\omega\varepsilon$, each pulled
    back to $\theta$ (SDS itself is $\mu = 1$); for SSD, ``h`` is $\omega h_\phi$ pulled back.
    Both are linear in what is pulled back, so one pull-back per term suffices.

    Args:
        f: Per-sample estimator without the control variate, ``[K, T, N, D...]``.
        h: Its control variate on the same draws, same shape.

    Returns:
        An :class:`OracleCoefficient` (noise-only parts comparable to
        :attr:`Decomposition.noise_only`).
    """
    k, t, n = _check_design(f, "f")
    if h.shape != f.shape:
        raise ValueError(f"h must have f's shape {tuple(f.shape)}, got {tuple(h.shape)}")
    if n < 4:
        raise ValueError(f"oracle_coefficient needs N >= 4 noises per cell, got {n}")
    f = f.reshape(k, t, n, -1)
    h = h.reshape(k, t, n, -1)
    half = n // 2
    mus, s_ff, res_in, res_split = [], [], [], []
    tiny = torch.finfo(torch.float64).tiny
    for i in range(k):
        fi, hi = f[i].double(), h[i].double()
        ff, fh, hh = _centred_moments(fi, hi)
        mu = fh / hh.clamp_min(tiny)
        mus.append(mu)
        s_ff.append(ff / (n - 1))
        res_in.append((ff - fh * mu) / (n - 1))
        a = _centred_moments(fi[:, :half], hi[:, :half])
        b = _centred_moments(fi[:, half:], hi[:, half:])
        mu_a = a[1] / a[2].clamp_min(tiny)
        mu_b = b[1] / b[2].clamp_min(tiny)
        on_b = (b[0] - 2 * mu_a * b[1] + mu_a**2 * b[2]) / (n - half - 1)
        on_a = (a[0] - 2 * mu_b * a[1] + mu_b**2 * a[2]) / (half - 1)
        res_split.append(0.5 * (on_a + on_b))
    s_ff_t = torch.stack(s_ff).mean(0)
    in_t = torch.stack(res_in).mean(0)
    split_t = torch.stack(res_split).mean(0)
    return OracleCoefficient(
        mu=torch.stack(mus), noise_only_f=float(s_ff_t.mean()),
        noise_only_in_sample=float(in_t.mean()), noise_only_split=float(split_t.mean()),
        per_t_noise_only_f=s_ff_t, per_t_in_sample=in_t, per_t_split=split_t,
    )


@dataclass(frozen=True)
class Efficiency:
    """Variance at equal compute."""

    variance: float
    """Variance of one sample of the estimator (e.g. ``Decomposition.total``)."""
    evaluations: float
    """UNet evaluations per sample (2 for an antithetic pair averaged into one sample)."""
    per_evaluation: float
    """``variance * evaluations``: the variance of an average over a budget of one UNet
    evaluation per unit (lower is better; equal budgets compare directly)."""
    seconds_per_step: float | None
    """Wall-clock seconds of one optimisation step (``None`` if not measured)."""
    samples_per_step: int
    """Samples averaged in one step (the batch)."""
    variance_time: float | None
    """``variance / samples_per_step * seconds_per_step``: the step gradient's variance times
    the step's cost (lower is better)."""

    def relative_to(self, ref: Efficiency) -> dict[str, float | None]:
        """Ratios to a reference (e.g. SDS): ``per_evaluation`` and ``variance_time``."""
        vt = (None if self.variance_time is None or ref.variance_time is None
              else self.variance_time / ref.variance_time)
        return {"per_evaluation": self.per_evaluation / ref.per_evaluation, "variance_time": vt}


def efficiency(
    variance: float, evaluations: float = 1.0, seconds_per_step: float | None = None,
    samples_per_step: int = 1,
) -> Efficiency:
    """Variance per UNet evaluation and variance × seconds per step (see :class:`Efficiency`).

    >>> sds, pair = efficiency(1.0), efficiency(0.3, evaluations=2)
    >>> pair.relative_to(sds)["per_evaluation"]
    0.6
    """
    if evaluations <= 0 or samples_per_step < 1:
        raise ValueError(
            f"evaluations must be > 0 and samples_per_step >= 1, got {evaluations}, "
            f"{samples_per_step}"
        )
    vt = None if seconds_per_step is None else variance / samples_per_step * seconds_per_step
    return Efficiency(
        variance=variance, evaluations=evaluations, per_evaluation=variance * evaluations,
        seconds_per_step=seconds_per_step, samples_per_step=samples_per_step, variance_time=vt,
    )
