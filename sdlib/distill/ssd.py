r"""Stein Score Distillation (SSD), SteinDreamer (Wang et al., 2023, arXiv 2401.00604).

Score distillation estimates ``E_{t,c,ε}[ω(t) ε̂(x_t)]`` by Monte Carlo; SDS subtracts the
zero-mean control variate ``ε``. SSD subtracts a better one, built from Stein's identity:

    grad_SSD = ω(t) (ε̂ − μ ⊙ h),      h = ε φ(x_t) − σ_t ∇_{x_t} φ(x_t).

**Sign.** For fixed ``(θ, c, t)``, ``x_t ~ N(α_t x, σ_t² I)``, so ``∇ log q(x_t) = −ε/σ_t``, and
Stein's identity ``E[φ ∇ log q + ∇φ] = 0`` multiplied by ``−σ_t`` gives ``E[h] = 0``. The form
printed on the project page, ``εφ + ∇φ``, has mean ``2 E[∇φ]`` at ``σ_t = 1`` (notebook 11;
:func:`sdlib.control_variates.stein_control_variate_printed`). With ``φ ≡ 1, μ ≡ 1``,
``h = ε`` and SSD is SDS exactly.

**Baseline φ** (a scalar per sample, a function of ``x_t`` only for fixed ``θ, c``):

* ``depth`` (SteinDreamer): ``φ = 1 − Pearson(D(decode(x_t)), 1/depth_render)`` over the
  object's pixels (opacity > 0.5); ``D`` is a monocular estimator of *inverse* depth (MiDaS),
  so it is correlated with the render's inverse depth, and the render is detached. ``∇φ``
  flows through ``D`` and the VAE decoder, never through the UNet.
* ``normal``: ``φ = 1 − mean cos(N(decode(x_t)), n_render)`` over the object's pixels, for a
  normal estimator ``N``.
* ``constant``: ``φ ≡ 1`` (then SSD is SDS with a learned ``μ``).

**Coefficient μ** (scalar, per channel or per element) minimises the estimator's second
moment ``||ω (ε̂ − μ ⊙ h)||²`` with ``ε̂, h`` detached (Adam, or the running closed form
``μ* = E[ε̂ h] / E[h²]``), and is updated *after* it is used for the step, so the step's
control variate stays zero-mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sdlib.control_variates import (
    CoefficientConfig,
    EMACoefficient,
    LearnedCoefficient,
    stein_control_variate,
)

__all__ = [
    "SSDConfig",
    "SSD",
    "ssd_gradient",
    "masked_pearson",
    "depth_baseline",
    "normal_baseline",
    "constant_baseline",
]

Baseline = Callable[[Tensor], Tensor]
"""A baseline ``φ``: noised latents ``[B, C, h, w]`` → one scalar per sample ``[B]``."""


@dataclass(frozen=True)
class SSDConfig:
    """Configuration of SSD's control variate."""

    baseline: Literal["depth", "normal", "constant"] = "depth"
    """Which baseline φ: SteinDreamer's depth correlation, normal agreement, or φ ≡ 1."""
    coefficient: CoefficientConfig = field(default_factory=CoefficientConfig)
    """μ: its shape (reduce = "scalar" | "channel" | "element"), initial value, learning rate."""
    coefficient_update: Literal["adam", "ema"] = "adam"
    """How μ learns: Adam on the second moment, or the running closed form."""
    mask_threshold: float = 0.5
    """Pixels with rendered opacity above this are the object's, for the baselines."""
    decoder: Literal["vae", "linear"] = "vae"
    """How the depth and normal baselines turn ``x_t`` into an image: the prior's VAE decoder
    (SteinDreamer's ``decode``), or a fitted affine latent → RGB map at the latent resolution
    (:meth:`sdlib.priors.DiffusionPrior.decode_latents_linear`). Any φ keeps SSD unbiased; the
    linear one skips the decoder's forward and backward (at 512² most of φ's cost) and fits
    when the render is no finer than the latent grid (64² renders, 64² latents of SD)."""

    def __post_init__(self) -> None:
        if self.baseline not in ("depth", "normal", "constant"):
            raise ValueError(
                f"SSDConfig.baseline={self.baseline!r}; accepted: 'depth', 'normal', 'constant'"
            )
        if self.coefficient_update not in ("adam", "ema"):
            raise ValueError(
                f"SSDConfig.coefficient_update={self.coefficient_update!r}; "
                "accepted: 'adam', 'ema'"
            )
        if self.decoder not in ("vae", "linear"):
            raise ValueError(f"SSDConfig.decoder={self.decoder!r}; accepted: 'vae', 'linear'")
        if not 0.0 <= self.mask_threshold < 1.0:
            raise ValueError(f"SSDConfig.mask_threshold={self.mask_threshold} not in [0, 1)")


def ssd_gradient(eps_pred: Tensor, h: Tensor, mu: Tensor | float, weight: Tensor) -> Tensor:
    """``ω(t) (ε̂ − μ ⊙ h)``.

    Args:
        eps_pred: ``[B, C, H, W]`` guided noise prediction.
        h: ``[B, C, H, W]`` the Stein control variate.
        mu: a float, or a tensor broadcastable to ``[C, H, W]`` (scalar/channel/element).
        weight: ``[B]`` the weight ``ω(t)``.

    Returns:
        ``[B, C, H, W]`` the gradient on ``x`` (detached).
    """
    w = weight.reshape(-1, *([1] * (eps_pred.dim() - 1))).to(eps_pred.dtype)
    return (w * (eps_pred - mu * h)).detach()


def masked_pearson(a: Tensor, b: Tensor, mask: Tensor, min_pixels: int = 2) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` over the pixels where ``mask`` is true, per sample.

    Args:
        a, b: ``[B, H, W]``.
        mask: ``[B, H, W]`` boolean.
        min_pixels: samples with fewer masked pixels get correlation 0 (and no gradient).

    Returns:
        ``[B]`` correlations in [-1, 1]; differentiable in ``a`` and ``b``.
    """
    m = mask.to(a.dtype)
    n = m.sum(dim=(1, 2))
    safe_n = n.clamp_min(1.0)
    mean_a = (a * m).sum(dim=(1, 2)) / safe_n
    mean_b = (b * m).sum(dim=(1, 2)) / safe_n
    da = (a - mean_a[:, None, None]) * m
    db = (b - mean_b[:, None, None]) * m
    cov = (da * db).sum(dim=(1, 2))
    var = (da.pow(2).sum(dim=(1, 2)) * db.pow(2).sum(dim=(1, 2))).clamp_min(1e-12)
    corr = cov / var.sqrt()
    return torch.where(n >= min_pixels, corr, torch.zeros_like(corr))


def depth_baseline(
    decode: Callable[[Tensor], Tensor],
    depth_model: Callable[[Tensor], Tensor],
    depth_render: Tensor,
    opacity: Tensor,
    mask_threshold: float = 0.5,
) -> Baseline:
    """SteinDreamer's baseline ``φ(x_t) = 1 − Pearson(D(decode(x_t)), 1/depth_render)``.

    Args:
        decode: latents ``[B, C, h, w]`` → images ``[B, 3, H', W']`` in [0, 1] (differentiable).
        depth_model: images ``[B, 3, H', W']`` → inverse depth ``[B, H'', W'']``
            (differentiable).
        depth_render: ``[B, H, W]`` rendered depth along the ray (detached here).
        opacity: ``[B, H, W]`` rendered opacity (detached here).
        mask_threshold: object pixels have opacity above this.

    Returns:
        ``φ``: latents ``[B, C, h, w]`` → ``[B]``.
    """
    depth = depth_render.detach()
    mask = opacity.detach() > mask_threshold
    inv_depth = torch.where(mask, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    size = tuple(depth.shape[-2:])

    def phi(x_t: Tensor) -> Tensor:
        pred = depth_model(decode(x_t))
        if tuple(pred.shape[-2:]) != size:
            pred = F.interpolate(pred[:, None], size=size, mode="bilinear", align_corners=False)
            pred = pred[:, 0]
        return 1.0 - masked_pearson(pred, inv_depth, mask)

    return phi


def normal_baseline(
    decode: Callable[[Tensor], Tensor],
    normal_model: Callable[[Tensor], Tensor],
    normals_render: Tensor,
    opacity: Tensor,
    mask_threshold: float = 0.5,
) -> Baseline:
    """Baseline ``φ(x_t) = 1 − mean_mask cos(N(decode(x_t)), n_render)``.

    Args:
        decode: latents → images ``[B, 3, H', W']`` in [0, 1].
        normal_model: images → normals ``[B, 3, H'', W'']`` (need not be unit).
        normals_render: ``[B, H, W, 3]`` rendered normals (detached here).
        opacity: ``[B, H, W]`` rendered opacity (detached here).
        mask_threshold: object pixels have opacity above this.
    """
    target = F.normalize(normals_render.detach().permute(0, 3, 1, 2), dim=1)
    mask = (opacity.detach() > mask_threshold).to(target.dtype)
    size = tuple(target.shape[-2:])

    def phi(x_t: Tensor) -> Tensor:
        pred = normal_model(decode(x_t))
        if tuple(pred.shape[-2:]) != size:
            pred = F.interpolate(pred, size=size, mode="bilinear", align_corners=False)
        cos = (F.normalize(pred, dim=1) * target).sum(dim=1)
        return 1.0 - (cos * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp_min(1.0)

    return phi


def constant_baseline(x_t: Tensor) -> Tensor:
    """``φ ≡ 1`` (zero gradient): SSD becomes SDS with a learned ``μ``."""
    return torch.ones(x_t.shape[0], dtype=x_t.dtype, device=x_t.device) + 0.0 * x_t.sum(
        dim=tuple(range(1, x_t.dim()))
    )


class SSD:
    """SSD's gradient with its learned coefficient μ (state passed explicitly, gsplat-style).

    >>> ssd = SSD(SSDConfig(baseline="constant"), event_shape=(4, 8, 8))
    >>> eps = torch.randn(2, 4, 8, 8); eps_pred = torch.randn(2, 4, 8, 8)
    >>> g, info = ssd.gradient(eps_pred, eps, eps, torch.ones(2), torch.ones(2), constant_baseline)
    >>> torch.equal(g, eps_pred - eps)   # φ ≡ 1, μ ≡ 1 at the start: SDS
    True
    """

    def __init__(
        self,
        config: SSDConfig,
        event_shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config
        cls = LearnedCoefficient if config.coefficient_update == "adam" else EMACoefficient
        self.coefficient = cls(config.coefficient, tuple(event_shape), device=device, dtype=dtype)

    @property
    def mu(self) -> Tensor:
        """The current coefficient μ (shape by ``config.coefficient.reduce``)."""
        return self.coefficient.mu

    def gradient(
        self,
        eps_pred: Tensor,
        eps: Tensor,
        x_t: Tensor,
        sigma: Tensor,
        weight: Tensor,
        phi: Baseline,
        update: bool = True,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The SSD gradient on ``x``, then (if ``update``) one update of μ.

        Args:
            eps_pred: ``[B, C, H, W]`` guided noise prediction ``ε̂`` at ``x_t``.
            eps: ``[B, C, H, W]`` the noise that made ``x_t``.
            x_t: ``[B, C, H, W]`` noised latents.
            sigma: ``[B]`` the noise level ``σ_t``.
            weight: ``[B]`` the weight ``ω(t)``.
            phi: the baseline, ``[B, C, H, W] → [B]``.
            update: learn μ from this batch after computing the gradient.

        Returns:
            ``grad`` ``[B, C, H, W]`` (detached) and diagnostics ``{"phi", "mu_mean", "h_norm"}``.
        """
        h, phi_value = stein_control_variate(phi, x_t, eps, sigma)
        # used for this step, before the update (zero-mean CV); cloned: Adam updates in place
        mu = self.coefficient.mu.clone()
        grad = ssd_gradient(eps_pred, h, mu, weight)
        if update:
            w = weight.reshape(-1, *([1] * (eps_pred.dim() - 1))).to(eps_pred.dtype)
            self.coefficient.update(w * eps_pred.detach(), w * h)
        info = {
            "phi": phi_value.detach(),
            "mu_mean": mu.mean().detach(),
            "h_norm": h.flatten(1).norm(dim=1).detach(),
        }
        return grad, info
