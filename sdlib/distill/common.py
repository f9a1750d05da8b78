r"""What SDS, VSD and SSD share: timesteps, noising, weighting and the pull-back loss.

Notation (DESIGN.md §2): a render (or its VAE latent) ``x = g(θ, c)``; a timestep
``t ~ U[t_min, t_max]`` (as a fraction of the prior's ``T`` training steps); ``ᾱ_t`` the prior's
cumulative product of ``1 − β``; ``α_t = sqrt(ᾱ_t)``, ``σ_t = sqrt(1 − ᾱ_t)``;
``x_t = α_t x + σ_t ε`` with ``ε ~ N(0, I)``; the weight ``ω(t) = σ_t²`` unless configured.

Each method turns ``(ε̂, ε, ...)`` into a gradient ``grad`` on ``x``; the update to θ is its
pull-back through the renderer, obtained from the surrogate loss

    loss = 0.5 * || x − (x − grad).detach() ||²      (summed over every element)

whose gradient with respect to ``x`` is exactly ``grad``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "TimestepConfig",
    "t_range_at",
    "sample_timesteps",
    "timestep_bounds",
    "stratified_uniform",
    "alpha_sigma",
    "add_noise",
    "weighting",
    "pullback_loss",
    "decoded_pullback_loss",
    "check_finite",
    "to_device",
]

Weighting = Literal["sigma2", "uniform"]


@dataclass(frozen=True)
class TimestepConfig:
    """How timesteps are drawn: uniform in ``[t_min, t_max]``, with ``t_max`` optionally annealed.

    ``t_max`` moves linearly from ``t_max`` (at ``anneal_start``) to ``t_max_end`` (at
    ``anneal_end``) and stays there; ProlificDreamer uses 0.98 → 0.5 at step 5000
    (``anneal_start=5000, anneal_end=5001``).
    """

    t_min: float = 0.02
    """Smallest timestep, as a fraction of the prior's training steps, in [0, 1)."""
    t_max: float = 0.98
    """Largest timestep at the start, as a fraction, in (t_min, 1]."""
    t_max_end: float | None = None
    """Largest timestep after annealing (None: no annealing)."""
    anneal_start: int = 0
    """Step at which annealing of t_max begins."""
    anneal_end: int = 0
    """Step at which t_max reaches t_max_end."""
    weighting: Weighting = "sigma2"
    """ω(t): "sigma2" is σ_t² = 1 − ᾱ_t (DreamFusion), "uniform" is 1."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.t_min < self.t_max <= 1.0:
            raise ValueError(
                f"TimestepConfig: need 0 <= t_min < t_max <= 1, got t_min={self.t_min}, "
                f"t_max={self.t_max}"
            )
        if self.t_max_end is not None:
            if not self.t_min < self.t_max_end <= 1.0:
                raise ValueError(
                    f"TimestepConfig.t_max_end={self.t_max_end} must lie in (t_min, 1]"
                )
            if self.anneal_end < self.anneal_start:
                raise ValueError("TimestepConfig: anneal_end must be >= anneal_start")
        if self.weighting not in ("sigma2", "uniform"):
            raise ValueError(
                f"TimestepConfig.weighting={self.weighting!r}; accepted: 'sigma2', 'uniform'"
            )


def t_range_at(config: TimestepConfig, step: int) -> tuple[float, float]:
    """``(t_min, t_max)`` in effect at ``step`` (fractions of the training steps)."""
    if config.t_max_end is None or step <= config.anneal_start:
        return config.t_min, config.t_max
    if step >= config.anneal_end:
        return config.t_min, config.t_max_end
    frac = (step - config.anneal_start) / max(config.anneal_end - config.anneal_start, 1)
    return config.t_min, config.t_max + frac * (config.t_max_end - config.t_max)


def timestep_bounds(config: TimestepConfig, step: int, num_train_timesteps: int
                    ) -> tuple[int, int]:
    """``(lo, hi)``: the inclusive integer range :func:`sample_timesteps` draws from at
    ``step``, ``[round(t_min T), min(round(t_max T), T − 1)]``."""
    t_min, t_max = t_range_at(config, step)
    lo = int(round(t_min * num_train_timesteps))
    hi = min(int(round(t_max * num_train_timesteps)), num_train_timesteps - 1)
    return lo, hi


def sample_timesteps(
    config: TimestepConfig,
    step: int,
    batch_size: int,
    num_train_timesteps: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    stratified: bool = False,
) -> Tensor:
    """Integer timesteps ``[B]`` uniform in ``[round(t_min T), round(t_max T)]`` (inclusive).

    With ``stratified``, the range's ``n = hi − lo + 1`` integers are cut into ``B`` equal
    strata and sample ``i`` takes ``t_i = lo + ⌊n (π_i + u_i) / B⌋`` with ``π`` a random
    permutation and ``u_i ~ U[0, 1)``: one timestep per stratum, and each ``t_i`` on its own is
    still uniform over the range (so any estimator stays unbiased).

    Args:
        config: the timestep configuration.
        step: the optimisation step (for annealing).
        batch_size: ``B``, one timestep per sample.
        num_train_timesteps: the prior's ``T`` (1000 for Stable Diffusion).
        generator: a CPU generator for reproducible draws.
        device: device of the result.
        stratified: one timestep per stratum (see above).
    """
    lo, hi = timestep_bounds(config, step, num_train_timesteps)
    if stratified:
        u = stratified_uniform(batch_size, generator)
        t = lo + (u * (hi - lo + 1)).long().clamp(max=hi - lo)
    else:
        t = torch.randint(lo, hi + 1, (batch_size,), generator=generator)
    return t.to(device)


def stratified_uniform(n: int, generator: torch.Generator | None = None) -> Tensor:
    """``[n]`` numbers in ``[0, 1)``, one in each stratum ``[k/n, (k+1)/n)`` in random order;
    each is marginally ``U[0, 1)``. Draws ``n`` permutation keys, then ``n`` uniforms."""
    perm = torch.randperm(n, generator=generator)
    u = torch.rand(n, generator=generator)
    return (perm.double() + u.double()).div(n).float().clamp(max=1.0 - 1e-7)


def alpha_sigma(alphas_cumprod: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``α_t = sqrt(ᾱ_t)`` and ``σ_t = sqrt(1 − ᾱ_t)``, each ``[B]``, for integer ``t`` ``[B]``."""
    abar = alphas_cumprod.to(t.device)[t]
    return abar.sqrt(), (1.0 - abar).sqrt()


def _per_sample(v: Tensor, like: Tensor) -> Tensor:
    return v.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def add_noise(x: Tensor, eps: Tensor, alphas_cumprod: Tensor, t: Tensor) -> Tensor:
    """``x_t = α_t x + σ_t ε`` for ``x, ε`` of shape ``[B, ...]`` and integer ``t`` ``[B]``."""
    alpha, sigma = alpha_sigma(alphas_cumprod, t)
    return _per_sample(alpha, x) * x + _per_sample(sigma, x) * eps


def weighting(config: TimestepConfig, alphas_cumprod: Tensor, t: Tensor) -> Tensor:
    """``ω(t)`` ``[B]``: σ_t² = 1 − ᾱ_t for "sigma2", ones for "uniform"."""
    if config.weighting == "uniform":
        return torch.ones(t.shape, device=t.device, dtype=alphas_cumprod.dtype)
    return 1.0 - alphas_cumprod.to(t.device)[t]


def to_device(x: Tensor, device: torch.device | str) -> Tensor:
    """A CPU tensor (e.g. drawn from a CPU generator) on ``device``; on CUDA through pinned
    memory and ``non_blocking``, so that the host does not wait for the GPU's queue to drain
    (a copy from pageable memory would)."""
    device = torch.device(device)
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def check_finite(grad: Tensor, where: str = "pullback_loss") -> None:
    """Raises ``FloatingPointError`` if ``grad`` has a NaN or infinite value (a host sync)."""
    if not torch.isfinite(grad).all():
        bad = int((~torch.isfinite(grad)).sum())
        raise FloatingPointError(
            f"{where}: the distillation gradient has {bad} non-finite values "
            f"(shape {tuple(grad.shape)}); no update was made"
        )


def pullback_loss(x: Tensor, grad: Tensor, check: bool = True) -> Tensor:
    """Surrogate loss ``0.5 ||x − (x − grad).detach()||²`` whose gradient in ``x`` is ``grad``.

    Args:
        x: ``[B, ...]`` the render's latents (with their graph to θ).
        grad: ``[B, ...]`` the distillation gradient on ``x``.
        check: check ``grad`` for NaN / inf here (a host sync). A caller that passes False
            must call :func:`check_finite` itself before updating θ (the trainer does it after
            the backward, so that the host can queue the backward while the UNet runs).

    Raises:
        FloatingPointError: if ``check`` and ``grad`` has a NaN or infinite value.
    """
    if check:
        check_finite(grad)
    target = (x - grad).detach()
    return 0.5 * (x - target).pow(2).sum()


def decoded_pullback_loss(images: Tensor, latents: Tensor, grad: Tensor, decode,
                          check: bool = True) -> Tensor:
    """Surrogate loss ``0.5 ||images − D(x − grad).detach()||²``: the step taken in image space.

    The distillation gradient ``grad`` is turned into a decoded target ``D(x − grad)`` (``D`` the
    prior's VAE decoder, ``x`` the latents of ``images``) and the images are pulled towards it,
    instead of pulling ``grad`` back through the encoder (:func:`pullback_loss` on
    ``x = E(images)``).
    With ``grad = 0`` the target is the VAE's reconstruction ``D(E(images))``.

    Why (notes/colour.md): ShapeZoo-SD's UNet is trained on *posterior samples* of a VAE whose
    posterior noise (std 0.58 per latent element) is half the latents' spread (1.09), so a
    colour change the prior cannot tell from that noise (brown → magenta moves the latents by
    0.14 RMS) meets no restoring force through the encoder, and colours keep their initial
    value plus drift. The decoder, trained on the same noisy latents, draws such latents in the
    palette's colours, so the decoded target restores the colour.

    Args:
        images: ``[B, 3, H, W]`` in [0, 1], with their graph to θ.
        latents: ``[B, C, h, w]`` the latents the gradient was computed at (detached here).
        grad: ``[B, C, h, w]`` the distillation gradient on the latents.
        decode: latents → images ``[B, 3, H, W]`` in [0, 1] (``DiffusionPrior.decode_latents``).
        check: check ``grad`` for NaN / inf first (see :func:`pullback_loss`).
    """
    if check:
        check_finite(grad, "decoded_pullback_loss")
    with torch.no_grad():
        target = decode((latents - grad).detach()).to(images.dtype)
    return 0.5 * (images - target).pow(2).sum()
