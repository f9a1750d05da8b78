r"""Measuring the variance of a gradient estimator (DESIGN.md §2, "variance protocol").

Given $N$ independent per-sample gradients $g_1..g_N \in \mathbb{R}^D$ of one estimator at a
frozen $\theta$ (each from its own draw of $(t, c, \varepsilon)$):

$$\bar g = \frac1N\sum_i g_i,\qquad
\operatorname{tr}\widehat{\mathrm{Cov}} = \frac{1}{N-1}\sum_i \|g_i - \bar g\|^2,\qquad
\widehat{\|m\|^2} = \frac{1}{N(N-1)}\sum_{i\ne j}\langle g_i, g_j\rangle
  = \|\bar g\|^2 - \frac{\operatorname{tr}\widehat{\mathrm{Cov}}}{N},\qquad
\mathrm{rel} = \frac{\operatorname{tr}\widehat{\mathrm{Cov}}}{\widehat{\|m\|^2}}.$$

We divide by $N - 1$ everywhere (the unbiased trace of the covariance); the single-sample
estimator's variance is what is reported, not that of $\bar g$ (which is $N$ times smaller).
**Lead with** $\operatorname{tr}\mathrm{Cov}$: the relative variance needs $\|m\|^2$, and
$\|\bar g\|^2$ is a biased estimate of it, $\mathbb{E}\|\bar g\|^2 = \|m\|^2 +
\operatorname{tr}\mathrm{Cov}/N$, so $\operatorname{tr}\widehat{\mathrm{Cov}}/\|\bar g\|^2$
saturates at $N$ whenever the mean is small against the noise (every method read ~31 with
$N = 32$). The U-statistic $\widehat{\|m\|^2}$ (pairs of distinct samples) is unbiased; it can
be negative when $\|m\|^2$ is not resolved, and the relative variance is then meaningless:
read it with its standard error. For designs with shared cameras or timesteps use
:mod:`sdlib.decomposition`.
Standard errors of both numbers are **jackknife** (leave-one-out) estimates,
$\mathrm{se}^2 = \frac{N-1}{N}\sum_i(\hat\theta_{-i} - \bar\theta_{-\cdot})^2$, computed in
closed form in $O(ND)$. The per-coordinate standard error of the mean is
$\sqrt{\widehat{\mathrm{Var}}_j / N}$.

Two estimators are "equal in mean within confidence intervals" when the per-coordinate
z-scores $z_j = (\bar a_j - \bar b_j)/\sqrt{\mathrm{se}_{a,j}^2 + \mathrm{se}_{b,j}^2}$ are
compatible with noise: we report $\max_j |z_j|$ with its Šidák p-value and the diagonal
Hotelling-like statistic $T^2 = \sum_j z_j^2 \approx \chi^2_D$ (ignores correlations between
coordinates; p-value by the Wilson–Hilferty approximation).

:class:`WelfordAccumulator` gives mean and trace of the covariance without storing samples;
:class:`GradNormEMA` is the cheap per-step proxy logged during training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

GradSource = Tensor | Iterable[Tensor | Iterable[Tensor]] | Callable[[], Tensor]
"""A ``[N, D]`` tensor, an iterable of per-sample gradients (tensors or lists of tensors,
flattened and concatenated), or a zero-argument callable returning one flat gradient."""


def _flat(g: Tensor | Iterable[Tensor]) -> Tensor:
    if isinstance(g, Tensor):
        return g.reshape(-1)
    return torch.cat([p.reshape(-1) for p in g])


def as_sample_matrix(grads: GradSource, n: int | None = None) -> Tensor:
    """Stack per-sample gradients into a ``[N, D]`` matrix.

    Args:
        grads: A ``[N, D]`` (or ``[N, *shape]``) tensor, an iterable of per-sample gradients
            (each a tensor or a list of tensors, e.g. ``[p.grad for p in params]``), or a
            zero-argument callable returning one flat gradient per call.
        n: Number of calls when ``grads`` is a callable.

    Returns:
        ``[N, D]``.
    """
    if isinstance(grads, Tensor):
        if grads.dim() < 2:
            raise ValueError(f"per-sample gradients must be [N, D], got {tuple(grads.shape)}")
        return grads.reshape(grads.shape[0], -1)
    if callable(grads):
        if n is None:
            raise ValueError("pass n= (number of samples) with a callable gradient source")
        return torch.stack([_flat(grads()) for _ in range(n)])
    return torch.stack([_flat(g) for g in grads])


@dataclass(frozen=True)
class VarianceReport:
    """Mean and spread of a gradient estimator from ``n`` per-sample gradients."""

    mean: Tensor
    """Mean gradient, ``[D]``."""
    mean_se: Tensor
    """Standard error of each coordinate of the mean, ``[D]``."""
    trace_cov: float
    """Trace of the covariance of one sample, divisor N - 1."""
    trace_cov_se: float
    """Jackknife standard error of ``trace_cov``."""
    mean_sq_norm: float
    """Unbiased ``||m||^2``: mean of ``<g_i, g_j>`` over ``i != j`` (= ``||mean||^2 -
    trace_cov / n``)."""
    mean_sq_norm_se: float
    """Jackknife standard error of ``mean_sq_norm``."""
    rel_var: float
    """Relative variance ``trace_cov / mean_sq_norm`` (unbiased ``||m||^2``)."""
    rel_var_se: float
    """Jackknife standard error of ``rel_var``."""
    n: int
    """Number of samples."""

    def to_dict(self, with_mean: bool = True) -> dict:
        """JSON-serialisable dictionary (for figure sidecars)."""
        out = {
            "trace_cov": self.trace_cov,
            "trace_cov_se": self.trace_cov_se,
            "mean_sq_norm": self.mean_sq_norm,
            "mean_sq_norm_se": self.mean_sq_norm_se,
            "rel_var": self.rel_var,
            "rel_var_se": self.rel_var_se,
            "mean_norm": float(self.mean.norm()),
            "n": self.n,
        }
        if with_mean:
            out["mean"] = self.mean.tolist()
            out["mean_se"] = self.mean_se.tolist()
        return out


def trace_covariance(grads: GradSource, n: int | None = None) -> Tensor:
    r"""$\frac{1}{N-1}\sum_i \|g_i - \bar g\|^2$ for per-sample gradients ``[N, D]`` (0-d)."""
    g = as_sample_matrix(grads, n)
    if g.shape[0] < 2:
        raise ValueError("trace_covariance needs at least 2 samples")
    return (g - g.mean(0)).pow(2).sum() / (g.shape[0] - 1)


def mean_sq_norm(grads: GradSource, n: int | None = None) -> Tensor:
    r"""Unbiased $\|m\|^2 = \frac{1}{N(N-1)}\sum_{i\ne j}\langle g_i, g_j\rangle$ (0-d).

    Equals $\|\bar g\|^2 - \operatorname{tr}\widehat{\mathrm{Cov}}/N$; may be negative.
    """
    g = as_sample_matrix(grads, n)
    num = g.shape[0]
    if num < 2:
        raise ValueError("mean_sq_norm needs at least 2 samples")
    s = g.sum(0)
    return (s.pow(2).sum() - g.pow(2).sum()) / (num * (num - 1))


def relative_variance(grads: GradSource, n: int | None = None) -> Tensor:
    r"""$\operatorname{tr}\mathrm{Cov} / \widehat{\|m\|^2}$ (unbiased $\|m\|^2$) for
    per-sample gradients ``[N, D]`` (0-d)."""
    g = as_sample_matrix(grads, n)
    return trace_covariance(g) / mean_sq_norm(g)


def _jackknife_se(values: Tensor) -> float:
    n = values.shape[0]
    return float(((n - 1) / n * (values - values.mean()).pow(2).sum()).sqrt())


def variance_report(grads: GradSource, n: int | None = None) -> VarianceReport:
    """Mean, trace of covariance and relative variance with jackknife standard errors.

    Computed in float64. Leave-one-out values in closed form: with centred rows
    ``c_i = g_i - mean`` and ``S = sum_i ||c_i||^2``, dropping sample ``i`` gives
    ``tr_(-i) = (S - ||c_i||^2 N/(N-1)) / (N-2)`` and ``mean_(-i) = mean - c_i/(N-1)``.

    Args:
        grads: Per-sample gradients (see :func:`as_sample_matrix`), ``N >= 3``.
        n: Number of calls when ``grads`` is a callable.

    Returns:
        A :class:`VarianceReport` (``mean`` and ``mean_se`` in the input dtype).
    """
    g = as_sample_matrix(grads, n)
    num = g.shape[0]
    if num < 3:
        raise ValueError(f"variance_report needs at least 3 samples, got {num}")
    g64 = g.double()
    mean = g64.mean(0)
    c = g64 - mean
    sq = c.pow(2).sum(1)  # [N]
    total = sq.sum()
    trace = total / (num - 1)
    msq = mean.pow(2).sum() - trace / num
    rel = trace / msq
    loo_trace = (total - sq * num / (num - 1)) / (num - 2)
    loo_msq = (mean - c / (num - 1)).pow(2).sum(1) - loo_trace / (num - 1)
    loo_rel = loo_trace / loo_msq
    mean_se = (c.pow(2).sum(0) / (num - 1) / num).sqrt()
    return VarianceReport(
        mean=mean.to(g.dtype),
        mean_se=mean_se.to(g.dtype),
        trace_cov=float(trace),
        trace_cov_se=_jackknife_se(loo_trace),
        mean_sq_norm=float(msq),
        mean_sq_norm_se=_jackknife_se(loo_msq),
        rel_var=float(rel),
        rel_var_se=_jackknife_se(loo_rel),
        n=num,
    )


class WelfordAccumulator:
    """Streaming mean and trace of covariance (Welford / Chan et al. merge), O(D) memory.

    Batches are merged with Chan's parallel update: for counts ``n_a, n_b``, means ``m_a, m_b``
    and sums of squared deviations ``M_a, M_b``:
    ``M = M_a + M_b + ||m_b - m_a||^2 n_a n_b / (n_a + n_b)`` (per coordinate). Accumulates
    in float64.

    >>> acc = WelfordAccumulator()
    >>> acc.update(torch.tensor([[0.0], [2.0]])); acc.update(torch.tensor([4.0]))
    >>> float(acc.trace_cov)  # var of 0, 2, 4 with divisor 2
    4.0
    """

    def __init__(self) -> None:
        self.n = 0
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None

    def update(self, grads: Tensor | Iterable[Tensor]) -> None:
        """Add one sample (``[D]`` or a list of tensors) or a batch ``[B, D]``."""
        if isinstance(grads, Tensor) and grads.dim() >= 2:
            batch = grads.reshape(grads.shape[0], -1).double()
        else:
            batch = _flat(grads).double()[None]
        nb = batch.shape[0]
        mb = batch.mean(0)
        m2b = (batch - mb).pow(2).sum(0)
        if self._mean is None:
            self.n, self._mean, self._m2 = nb, mb, m2b
            return
        na = self.n
        delta = mb - self._mean
        tot = na + nb
        self._mean = self._mean + delta * nb / tot
        self._m2 = self._m2 + m2b + delta.pow(2) * na * nb / tot
        self.n = tot

    @property
    def mean(self) -> Tensor:
        """Running mean ``[D]`` (float64)."""
        if self._mean is None:
            raise ValueError("WelfordAccumulator has no samples yet")
        return self._mean

    @property
    def var(self) -> Tensor:
        """Per-coordinate variance ``[D]``, divisor N - 1."""
        if self.n < 2:
            raise ValueError("WelfordAccumulator needs at least 2 samples for a variance")
        return self._m2 / (self.n - 1)

    @property
    def trace_cov(self) -> Tensor:
        """Trace of the covariance, divisor N - 1 (0-d, float64)."""
        return self.var.sum()

    @property
    def mean_sq_norm(self) -> Tensor:
        """Unbiased ``||m||^2 = ||mean||^2 - trace_cov / n`` (0-d, float64)."""
        return self.mean.pow(2).sum() - self.trace_cov / self.n

    @property
    def rel_var(self) -> Tensor:
        """``trace_cov / mean_sq_norm`` (0-d, float64)."""
        return self.trace_cov / self.mean_sq_norm


@dataclass(frozen=True)
class MeanComparison:
    """Per-coordinate comparison of two estimators' means."""

    z: Tensor
    """z-score of each coordinate's difference, ``[D]``."""
    max_abs_z: float
    """Largest |z|."""
    max_abs_z_p: float
    """Šidák p-value of ``max_abs_z`` under equal means: 1 - (1 - 2 Phi(-max|z|))^D."""
    chi2: float
    """Diagonal Hotelling-like statistic sum_j z_j^2 (approximately chi-square, D dof)."""
    chi2_p: float
    """Upper-tail p-value of ``chi2`` (Wilson-Hilferty approximation)."""
    dof: int
    """Number of coordinates D."""

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary (without the per-coordinate z)."""
        return {
            "max_abs_z": self.max_abs_z,
            "max_abs_z_p": self.max_abs_z_p,
            "chi2": self.chi2,
            "chi2_p": self.chi2_p,
            "dof": self.dof,
        }


def _normal_sf(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(x / math.sqrt(2.0))


def compare_means(a: VarianceReport | GradSource, b: VarianceReport | GradSource) -> MeanComparison:
    r"""Are the means of two estimators equal within their standard errors?

    $z_j = (\bar a_j - \bar b_j) / \sqrt{\mathrm{se}_{a,j}^2 + \mathrm{se}_{b,j}^2}$ for
    independent samples. Reports max |z| (Šidák p-value) and $T^2 = \sum_j z_j^2$, whose
    $\chi^2_D$ p-value uses Wilson–Hilferty:
    $\big((T^2/D)^{1/3} - (1 - \tfrac{2}{9D})\big) / \sqrt{2/(9D)} \sim \mathcal{N}(0,1)$.

    Args:
        a: A :class:`VarianceReport` or per-sample gradients ``[N_a, D]``.
        b: Same for the second estimator, ``[N_b, D]``.

    Returns:
        A :class:`MeanComparison`.
    """
    ra = a if isinstance(a, VarianceReport) else variance_report(a)
    rb = b if isinstance(b, VarianceReport) else variance_report(b)
    if ra.mean.shape != rb.mean.shape:
        raise ValueError(f"means differ in shape: {tuple(ra.mean.shape)} vs {tuple(rb.mean.shape)}")
    diff = ra.mean.double() - rb.mean.double()
    se = (ra.mean_se.double().pow(2) + rb.mean_se.double().pow(2)).sqrt()
    z = diff / se.clamp_min(torch.finfo(torch.float64).tiny)
    dof = z.numel()
    max_abs = float(z.abs().max())
    p_single = float(2 * _normal_sf(torch.tensor(max_abs, dtype=torch.float64)))
    max_p = 1.0 - (1.0 - p_single) ** dof
    chi2 = float(z.pow(2).sum())
    k = 2.0 / (9.0 * dof)
    wh = ((chi2 / dof) ** (1.0 / 3.0) - (1.0 - k)) / math.sqrt(k)
    chi2_p = float(_normal_sf(torch.tensor(wh, dtype=torch.float64)))
    return MeanComparison(
        z=z, max_abs_z=max_abs, max_abs_z_p=max_p, chi2=chi2, chi2_p=chi2_p, dof=dof
    )


class GradNormEMA:
    r"""Cheap per-step variance proxy from the gradients an optimiser sees anyway.

    Keeps bias-corrected EMAs of $g$ and $\|g\|^2$ and reports
    $\widehat{\mathrm{var}} = \overline{\|g\|^2} - \|\bar g\|^2$ (the trace of the covariance
    if $\theta$ moved slowly) and the norm EMA $\overline{\|g\|}$.

    Args:
        decay: EMA decay in ``[0, 1)``.
    """

    def __init__(self, decay: float = 0.98) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        self._g: Tensor | None = None
        self._sq = 0.0
        self._norm = 0.0

    def update(self, grad: Tensor | Iterable[Tensor]) -> float:
        """Fold one gradient (a tensor or list of tensors) in; returns the variance proxy."""
        g = _flat(grad).detach().double()
        d = self.decay
        self._g = (1 - d) * g if self._g is None else d * self._g + (1 - d) * g
        sq = float(g.pow(2).sum())
        self._sq = d * self._sq + (1 - d) * sq
        self._norm = d * self._norm + (1 - d) * math.sqrt(sq)
        self.steps += 1
        return self.variance

    @property
    def _corr(self) -> float:
        return 1.0 - self.decay**self.steps

    @property
    def norm(self) -> float:
        """Bias-corrected EMA of ``||g||``."""
        return self._norm / self._corr if self.steps else float("nan")

    @property
    def variance(self) -> float:
        """Bias-corrected ``EMA(||g||^2) - ||EMA(g)||^2``."""
        if not self.steps or self._g is None:
            return float("nan")
        return self._sq / self._corr - float((self._g / self._corr).pow(2).sum())
