r"""The one interface every score-distillation estimator implements.

Every method in this package turns the same shared draws into a gradient on the render's
latents ``x`` by *subtracting a control term* from the prior's guided prediction:

    grad = ω(t) (ε̂(x_t; y, t) − control),       x_t = α_t x + σ_t ε,

========================  =====================================================
method                    ``control``
========================  =====================================================
plain Monte Carlo         ``0``
SDS (DreamFusion)         ``ε``
SSD (SteinDreamer)        ``Σ_k μ_k(t) ⊙ h_k``, ``h_k = ε φ_k(x_t) − σ_t ∇φ_k(x_t)``
VSD (ProlificDreamer)     ``ε̂_φ(x_t; y, c, t)`` (a LoRA model of the current renders)
========================  =====================================================

So an estimator is an object with

* :meth:`Estimator.control`: the control term for one batch of draws (a :class:`Draw`),
  returned as an :class:`Estimate` (the term, diagnostics, and whatever its update needs);
* :meth:`Estimator.update`: its own learning *after* the step (SSD's μ and baseline network,
  VSD's LoRA), from the same draws, so the step's control variate did not see them;
* :meth:`Estimator.state_dict` / :meth:`Estimator.load_state_dict`: its state for checkpoints.

The trainer (:mod:`sdlib.train`) renders, encodes, draws ``(c, t, ε)``, calls the prior once,
builds one :class:`Draw`, and asks the configured estimator for its control; it never branches
on a method's name. The variance decomposition (:mod:`sdlib.gradient_variance`) evaluates
*several* estimators on the same :class:`Draw` — paired, one render and one UNet call for all.

A new estimator is one file with a class that has these four methods plus the classmethods
``needs_depth(config)`` (does it need a depth model?) and ``build(config, priors)``, listed in
:data:`sdlib.distill.ESTIMATORS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["Draw", "Estimate", "Estimator", "Priors", "distillation_gradient"]


@dataclass
class Draw:
    """One batch of shared draws ``(c, t, ε)`` and everything computed from them once.

    ``B`` samples; latents ``[B, C, h, w]``. With antithetic sampling, samples ``2i`` and
    ``2i + 1`` share camera and timestep and have opposite noises.
    """

    cameras: Any
    """:class:`sdlib.cameras.Cameras` ``[B]``."""
    render: Any
    """:class:`sdlib.nerf.render.RenderOutput` ``[B, H, W, ...]`` (rgb, depth, opacity,
    normals); baselines read it (detached)."""
    x: Tensor
    """``[B, C, h, w]`` the render's latents, detached."""
    t: Tensor
    """``[B]`` integer timesteps."""
    eps: Tensor
    """``[B, C, h, w]`` the noise that made ``x_t``."""
    x_t: Tensor
    """``[B, C, h, w]`` ``α_t x + σ_t ε``."""
    sigma: Tensor
    """``[B]`` ``σ_t``."""
    weight: Tensor
    """``[B]`` ``ω(t)``."""
    eps_pred: Tensor
    """``[B, C, h, w]`` the prior's guided prediction ``ε̂`` (float32, no graph)."""
    text: Tensor
    """``[B, L, D]`` the conditional text embeddings the prior saw (view-suffixed if so
    configured)."""
    text_plain: Tensor
    """``[B, L, D]`` the view-independent prompt's embedding (VSD's LoRA model sees this: the
    camera embedding carries the view, as in threestudio)."""
    step: int = 0
    """The optimisation step these draws belong to."""
    generator: torch.Generator | None = None
    """The run's CPU generator, for an estimator's own draws in :meth:`Estimator.update`."""


@dataclass
class Estimate:
    """What an estimator subtracts for one :class:`Draw`."""

    control: Tensor
    """``[B, C, h, w]`` the control term; the gradient is ``ω (ε̂ − control)``."""
    diagnostics: dict[str, Any] = field(default_factory=dict)
    """Per-batch numbers to log (0-dim tensors or floats; the trainer converts them)."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Whatever :meth:`Estimator.update` needs from this batch (e.g. SSD's ``h``)."""


@dataclass
class Priors:
    """The frozen models an estimator may use, and the latent shape."""

    prior: Any
    """:class:`sdlib.priors.DiffusionPrior`."""
    depth: Any
    """:class:`sdlib.priors.DepthPrior`, or None when no estimator asked for one."""
    latent_shape: tuple[int, int, int]
    """``(C, h, w)`` of one latent."""
    device: torch.device
    """Where the estimator's state lives."""


class Estimator(Protocol):
    """The interface (see the module docstring)."""

    def control(self, draw: Draw) -> Estimate: ...

    def update(self, draw: Draw, estimate: Estimate) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def distillation_gradient(draw: Draw, control: Tensor) -> Tensor:
    """``ω(t) (ε̂ − control)`` ``[B, C, h, w]``, detached.

    Args:
        draw: the shared draws (``eps_pred`` ``[B, C, h, w]``, ``weight`` ``[B]``).
        control: ``[B, C, h, w]`` (or broadcastable) term to subtract.
    """
    w = draw.weight.reshape(-1, *([1] * (draw.eps_pred.dim() - 1))).to(draw.eps_pred.dtype)
    return (w * (draw.eps_pred - control)).detach()
