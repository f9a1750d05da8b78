r"""Score Distillation Sampling (SDS), DreamFusion (Poole et al., 2022, arXiv 2209.14988).

The gradient on the render ``x`` (Eq. 3 of DreamFusion, without the UNet Jacobian):

    grad_SDS = ω(t) (ε̂(x_t; y, t) − ε),      x_t = α_t x + σ_t ε,

with ``ε̂`` the prior's noise prediction after classifier-free guidance
``ε̂ = ε_u + s (ε_y − ε_u)`` (diffusers' convention; threestudio writes ``s + 1`` for the same
number). As a Monte-Carlo estimator of the distilled score ``E_{t,ε}[ω (ε̂ − ε)]``, the
``− ε`` term is a zero-mean control variate (SteinDreamer §3): it is SSD's Stein control
variate with the constant baseline ``φ ≡ 1`` and coefficient ``μ ≡ 1``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from sdlib.distill.estimator import Draw, Estimate, Priors

__all__ = ["sds_gradient", "SDS"]


def sds_gradient(eps_pred: Tensor, eps: Tensor, weight: Tensor) -> Tensor:
    """``ω(t) (ε̂ − ε)``.

    Args:
        eps_pred: ``[B, C, H, W]`` guided noise prediction ``ε̂`` (no gradient needed).
        eps: ``[B, C, H, W]`` the noise that made ``x_t``.
        weight: ``[B]`` the weight ``ω(t)``.

    Returns:
        ``[B, C, H, W]`` the gradient on ``x`` (detached).
    """
    if eps_pred.shape != eps.shape:
        raise ValueError(f"eps_pred {tuple(eps_pred.shape)} and eps {tuple(eps.shape)} differ")
    w = weight.reshape(-1, *([1] * (eps.dim() - 1))).to(eps.dtype)
    return (w * (eps_pred - eps)).detach()


class SDS:
    """SDS as an :class:`sdlib.distill.estimator.Estimator`: the control term is ``ε``; no state.

    >>> import torch
    >>> from sdlib.distill.estimator import distillation_gradient
    >>> eps, eps_pred, w = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.rand(2)
    >>> draw = Draw(None, None, eps, torch.zeros(2), eps, eps, w, w, eps_pred, eps, eps)
    >>> torch.equal(distillation_gradient(draw, SDS().control(draw).control),
    ...             sds_gradient(eps_pred, eps, w))
    True
    """

    @classmethod
    def needs_depth(cls, config: Any) -> bool:
        return False

    @classmethod
    def build(cls, config: Any, priors: Priors) -> SDS:
        return cls()

    def control(self, draw: Draw) -> Estimate:
        return Estimate(control=draw.eps)

    def update(self, draw: Draw, estimate: Estimate) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
