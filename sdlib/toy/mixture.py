r"""A Gaussian-mixture prior whose noised score is exact at every time.

Data density $p_0(x) = \sum_k w_k\,\mathcal{N}(x; m_k, \Sigma_k)$ in $\mathbb{R}^d$ (2-D in the
notebooks). Under the VP forward process $x_t = \alpha_t x + \sigma_t\varepsilon$ the noised
density is again a mixture,

$$p_t(x_t) = \sum_k w_k\,\mathcal{N}\big(x_t;\ \alpha_t m_k,\
  \alpha_t^2\Sigma_k + \sigma_t^2 I\big),$$

so its score is exact: with responsibilities $r_k(x_t) \propto w_k \mathcal{N}_k(x_t)$ and
$C_k = \alpha_t^2\Sigma_k + \sigma_t^2 I$,
$\nabla\log p_t(x_t) = -\sum_k r_k\, C_k^{-1}(x_t - \alpha_t m_k)$, and the ideal
noise prediction is $\hat\varepsilon(x_t, t) = -\sigma_t\nabla\log p_t(x_t)$.

A set of particles $\{x^{(j)}\}$ is the special case $\Sigma_k = 0$: its noised density is
$\frac1K\sum_j\mathcal{N}(x_t; \alpha_t x^{(j)}, \sigma_t^2 I)$
(:func:`particle_eps_pred`, VSD's exact "current distribution" score).

Classifier-free-guidance-like conditioning: a subset of components plays $p(x\mid y)$ and
$\hat\varepsilon = \hat\varepsilon_u + s(\hat\varepsilon_y - \hat\varepsilon_u)$
(:meth:`GaussianMixture.guided_eps_pred`, diffusers' convention for $s$).

Schedule: $\alpha_t = \cos(\pi t/2)$, $\sigma_t = \sin(\pi t/2)$ (:func:`vp_alpha_sigma`),
so $\alpha_t^2 + \sigma_t^2 = 1$.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def vp_alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    r"""Cosine VP schedule $\alpha_t = \cos(\pi t/2)$, $\sigma_t = \sin(\pi t/2)$ (any shape)."""
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def _as_batch(v: Tensor | float, n: int, like: Tensor) -> Tensor:
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.expand(n) if v.dim() == 0 else v


@dataclass(frozen=True)
class GaussianMixture:
    r"""$p_0(x) = \sum_k w_k \mathcal{N}(x; m_k, \Sigma_k)$ with exact noised densities."""

    weights: Tensor
    """Mixture weights ``[M]`` (positive, summing to one)."""
    means: Tensor
    """Component means ``[M, d]``."""
    covs: Tensor
    """Component covariances ``[M, d, d]``."""

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.means.shape[-1]

    def noised(self, alpha: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        r"""Means $\alpha m_k$ ``[N, M, d]`` and covariances $\alpha^2\Sigma_k + \sigma^2 I$
        ``[N, M, d, d]`` for ``alpha, sigma`` of shape ``[N]``."""
        eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
        a = alpha[:, None, None]
        means = a * self.means[None]
        covs = a[..., None] ** 2 * self.covs[None] + sigma[:, None, None, None] ** 2 * eye
        return means, covs

    def _terms(self, x_t: Tensor, alpha: Tensor | float, sigma: Tensor | float):
        n = x_t.shape[0]
        alpha, sigma = _as_batch(alpha, n, x_t), _as_batch(sigma, n, x_t)
        means, covs = self.noised(alpha, sigma)
        chol = torch.linalg.cholesky(covs)  # [N, M, d, d]
        diff = x_t[:, None, :] - means  # [N, M, d]
        sol = torch.cholesky_solve(diff[..., None], chol)[..., 0]  # C^{-1}(x - m)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_n = -0.5 * (diff * sol).sum(-1) - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi)
        return torch.log(self.weights)[None] + log_n, sol  # [N, M], [N, M, d]

    def log_prob(self, x_t: Tensor, alpha: Tensor | float = 1.0, sigma: Tensor | float = 0.0):
        r"""$\log p_t(x_t)$, ``[N]``, for ``x_t`` ``[N, d]`` and ``alpha, sigma`` float or ``[N]``.

        ``sigma = 0`` needs positive-definite ``covs``.
        """
        log_joint, _ = self._terms(x_t, alpha, sigma)
        return torch.logsumexp(log_joint, dim=-1)

    def score(self, x_t: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        r"""Exact $\nabla_{x_t}\log p_t = -\sum_k r_k C_k^{-1}(x_t - \alpha m_k)$, ``[N, d]``."""
        log_joint, sol = self._terms(x_t, alpha, sigma)
        resp = torch.softmax(log_joint, dim=-1)
        return -(resp[..., None] * sol).sum(1)

    def eps_pred(self, x_t: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        r"""Ideal noise prediction $\hat\varepsilon = -\sigma_t\nabla\log p_t(x_t)$, ``[N, d]``."""
        sigma_b = _as_batch(sigma, x_t.shape[0], x_t)
        return -sigma_b[:, None] * self.score(x_t, alpha, sigma)

    def subset(self, index: Tensor | list[int]) -> GaussianMixture:
        """The mixture of the chosen components, weights renormalised (a "class" y)."""
        idx = torch.as_tensor(index, device=self.means.device)
        w = self.weights[idx]
        return GaussianMixture(w / w.sum(), self.means[idx], self.covs[idx])

    def guided_eps_pred(
        self,
        x_t: Tensor,
        alpha: Tensor | float,
        sigma: Tensor | float,
        cond: GaussianMixture,
        scale: float,
    ) -> Tensor:
        r"""CFG-like $\hat\varepsilon_u + s(\hat\varepsilon_y - \hat\varepsilon_u)$ with
        $\hat\varepsilon_y$ from ``cond`` (e.g. :meth:`subset`); ``[N, d]``."""
        eps_u = self.eps_pred(x_t, alpha, sigma)
        return eps_u + scale * (cond.eps_pred(x_t, alpha, sigma) - eps_u)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``[n, d]`` from $p_0$."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        chol = torch.linalg.cholesky(self.covs)[comp]
        return self.means[comp] + (chol @ z[..., None])[..., 0]


def ring_mixture(
    n_modes: int = 8,
    radius: float = 2.0,
    std: float = 0.25,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    """``n_modes`` isotropic 2-D Gaussians of std ``std``, evenly spaced on a circle."""
    angle = torch.arange(n_modes, dtype=dtype) * (2 * math.pi / n_modes)
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    covs = (std**2) * torch.eye(2, dtype=dtype).expand(n_modes, 2, 2).clone()
    return GaussianMixture(torch.full((n_modes,), 1.0 / n_modes, dtype=dtype), means, covs)


def particle_eps_pred(
    x_t: Tensor, particles: Tensor, alpha: Tensor | float, sigma: Tensor | float
) -> Tensor:
    r"""Exact noise prediction of noised particles (VSD's "current distribution").

    $q_t = \frac1K\sum_j\mathcal{N}(\alpha x^{(j)},\sigma^2 I)$.

    $\hat\varepsilon_q(x_t) = \sum_j r_j\,(x_t - \alpha x^{(j)})/\sigma$, with
    $r_j = \mathrm{softmax}_j(-\|x_t - \alpha x^{(j)}\|^2 / 2\sigma^2)$.

    Args:
        x_t: Noised points ``[N, d]``.
        particles: ``[K, d]`` shared, or ``[N, K, d]`` one set per point (e.g. per camera).
        alpha: float or ``[N]``.
        sigma: float or ``[N]`` (positive).

    Returns:
        ``[N, d]``.
    """
    n = x_t.shape[0]
    alpha, sigma = _as_batch(alpha, n, x_t), _as_batch(sigma, n, x_t)
    if particles.dim() == 2:
        particles = particles[None].expand(n, -1, -1)
    diff = x_t[:, None, :] - alpha[:, None, None] * particles  # [N, K, d]
    logits = -diff.pow(2).sum(-1) / (2 * sigma[:, None] ** 2)
    resp = torch.softmax(logits, dim=-1)
    return (resp[..., None] * diff).sum(1) / sigma[:, None]
