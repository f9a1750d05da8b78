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
* ``learned``: ``φ_ψ(x_t, t, c)``, a small network at the latent resolution trained online to
  minimise the estimator's second moment through ``h`` (``∇φ_ψ`` kept in the graph,
  ``create_graph=True``): the seeds' "network architectures to explicitly optimize for variance
  reduction". It starts at ``φ ≡ 1``.

**Several control variates.** ``h`` is linear in ``φ``, so the baseline
``φ = μ₀(t) + μ₁(t) φ_depth`` gives two control variates, ``h₀ = ε`` (φ ≡ 1) and
``h₁ = ε φ_depth − σ_t ∇φ_depth``, each with its own coefficient (``with_constant=True``):

    grad = ω(t) (ε̂ − μ₀(t) ⊙ ε − μ₁(t) ⊙ h₁).

It contains SDS (``μ₀ ≡ 1, μ₁ ≡ 0``, its initial value) and at its optimum cannot have a
larger second moment than SDS.

**Coefficient μ** (scalar, per channel or per element) minimises the estimator's second
moment ``||ω (ε̂ − μ ⊙ h)||²`` with ``ε̂, h`` detached (Adam, or the running closed form
``μ* = E[ε̂ h] / E[h²]``), and is updated *after* it is used for the step, so the step's
control variate stays zero-mean. ``coefficient_update="binned"`` makes the coefficients
functions of the timestep, ``μ_k(t)`` (:class:`sdlib.control_variates.BinnedCoefficient`: a
table over t-bins, linear interpolation, running closed form per bin), needed because the
optimal coefficient of SDS's own ``ε`` grows from about 0.3 at ``t = 50`` to 2–3 at ``t = 800``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdlib.control_variates import (
    BinnedCoefficient,
    BinnedCoefficientConfig,
    CoefficientConfig,
    EMACoefficient,
    LearnedCoefficient,
    stein_control_variate,
)
from sdlib.distill.estimator import Draw, Estimate, Priors

__all__ = [
    "SSDConfig",
    "SSD",
    "ssd_gradient",
    "masked_pearson",
    "depth_baseline",
    "normal_baseline",
    "constant_baseline",
    "BaselineNetwork",
    "LearnedBaselineConfig",
    "normals_from_inverse_depth",
]

Baseline = Callable[[Tensor], Tensor]
"""A baseline ``φ``: noised latents ``[B, C, h, w]`` → one scalar per sample ``[B]``."""


@dataclass(frozen=True)
class LearnedBaselineConfig:
    """The learned baseline network ``φ_ψ(x_t, t, c)`` (``SSDConfig.baseline="learned"``)."""

    hidden: int = 32
    """Channels of its two convolutions and width of its condition MLP."""
    lr: float = 1e-3
    """Adam learning rate of ψ."""


@dataclass(frozen=True)
class SSDConfig:
    """Configuration of SSD's control variate."""

    baseline: Literal["depth", "normal", "constant", "learned"] = "depth"
    """Which baseline φ: SteinDreamer's depth correlation, normal agreement, φ ≡ 1, or a
    network trained to minimise the estimator's second moment."""
    coefficient: CoefficientConfig = field(default_factory=CoefficientConfig)
    """μ: its shape (reduce = "scalar" | "channel" | "element"), initial value, learning rate."""
    coefficient_update: Literal["adam", "ema", "binned"] = "adam"
    """How μ learns: Adam on the second moment, the running closed form, or the running closed
    form per timestep bin (μ(t), :attr:`binned`)."""
    binned: BinnedCoefficientConfig = field(default_factory=BinnedCoefficientConfig)
    """μ(t)'s bins, grouping and forgetting (``coefficient_update="binned"`` only)."""
    with_constant: bool = False
    """Also subtract SDS's ``ε`` with its own coefficient μ₀(t) (starts at 1; the baseline's
    μ₁ starts at 0): the two-coefficient baseline ``φ = μ₀ + μ₁ φ_baseline``. Needs
    ``coefficient_update="binned"``."""
    learned: LearnedBaselineConfig = field(default_factory=LearnedBaselineConfig)
    """The learned baseline network (``baseline="learned"`` only)."""
    mask_threshold: float = 0.5
    """Pixels with rendered opacity above this are the object's, for the baselines."""
    decoder: Literal["vae", "linear"] = "vae"
    """How the depth and normal baselines turn ``x_t`` into an image: the prior's VAE decoder
    (SteinDreamer's ``decode``), or a fitted affine latent → RGB map at the latent resolution
    (:meth:`sdlib.priors.DiffusionPrior.decode_latents_linear`). Any φ keeps SSD unbiased; the
    linear one skips the decoder's forward and backward (at 512² most of φ's cost) and fits
    when the render is no finer than the latent grid (64² renders, 64² latents of SD)."""
    grad_scale: float = 1.0
    """``S`` of :func:`sdlib.control_variates.stein_control_variate`: ``∇φ`` is taken as
    ``∇(S·φ) / S`` (exact maths), so that a float16 depth model's and decoder's backward keeps
    gradients that would underflow at ``S = 1`` (``scripts/bench_paper_step.py --fp16_check``
    measures both)."""

    def __post_init__(self) -> None:
        if self.baseline not in ("depth", "normal", "constant", "learned"):
            raise ValueError(
                f"SSDConfig.baseline={self.baseline!r}; accepted: 'depth', 'normal', "
                "'constant', 'learned'"
            )
        if self.coefficient_update not in ("adam", "ema", "binned"):
            raise ValueError(
                f"SSDConfig.coefficient_update={self.coefficient_update!r}; "
                "accepted: 'adam', 'ema', 'binned'"
            )
        if self.with_constant and self.coefficient_update != "binned":
            raise ValueError(
                "SSDConfig.with_constant=True needs coefficient_update='binned' (two control "
                "variates, each with its own μ(t))"
            )
        if self.with_constant and self.baseline == "constant":
            raise ValueError(
                "SSDConfig.with_constant=True with baseline='constant' subtracts ε twice; use "
                "baseline='constant' alone for a per-t coefficient of SDS's ε"
            )
        if self.decoder not in ("vae", "linear"):
            raise ValueError(f"SSDConfig.decoder={self.decoder!r}; accepted: 'vae', 'linear'")
        if not 0.0 <= self.mask_threshold < 1.0:
            raise ValueError(f"SSDConfig.mask_threshold={self.mask_threshold} not in [0, 1)")
        if not (self.grad_scale > 0 and math.isfinite(self.grad_scale)):
            raise ValueError(f"SSDConfig.grad_scale={self.grad_scale} must be a finite number "
                             "> 0 (1, or a power of two such as 1024)")


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


def normals_from_inverse_depth(inv_depth: Tensor) -> Tensor:
    """Camera-frame normals ``[B, 3, H, W]`` from an inverse-depth image ``[B, H, W]``.

    ``n ∝ (−∂d/∂x, ∂d/∂y, 1)`` with ``d = 1 / inv_depth`` up to scale: an estimator-derived
    normal map for SSD's normal baseline (any φ keeps SSD unbiased; a better one lowers variance).
    """
    depth = 1.0 / inv_depth.clamp_min(1e-3)
    d = depth[:, None]
    dx = F.pad(d[..., :, 2:] - d[..., :, :-2], (1, 1, 0, 0), mode="replicate") * 0.5
    dy = F.pad(d[..., 2:, :] - d[..., :-2, :], (0, 0, 1, 1), mode="replicate") * 0.5
    scale = d.shape[-1] / 2.0
    n = torch.cat([-dx * scale, dy * scale, torch.ones_like(d)], dim=1)
    return F.normalize(n, dim=1)


def camera_normals(normals: Tensor, c2w: Tensor) -> Tensor:
    """World normals ``[B, H, W, 3]`` → camera frame (x right, y up, z towards the camera)."""
    return torch.einsum("bji,bhwj->bhwi", c2w[:, :3, :3], normals)


class BaselineNetwork(nn.Module):
    """``φ_ψ(x_t, t, c)``: noised latents ``[B, C, h, w]``, timesteps ``[B]``, cameras
    ``[B, 4, 4]`` → one scalar per sample ``[B]``.

    Two 3×3 convolutions (the second with stride 2) whose first layer is shifted per sample by
    an MLP of the camera (its flattened top 3×4 of ``c2w``) and of Fourier features of ``t/T``,
    SiLU activations (smooth: ``∇_{x_t} φ`` and its ψ-gradient exist), a spatial mean and a
    linear head that starts at zero with bias 1, so ``φ_ψ ≡ 1`` (SDS) at initialisation. It acts
    on each sample alone (no batch statistics), as Stein's identity needs.
    """

    def __init__(self, channels: int, hidden: int = 32, num_train_timesteps: int = 1000) -> None:
        super().__init__()
        self.num_train_timesteps = num_train_timesteps
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(4, dtype=torch.float32))
        self.cond = nn.Sequential(nn.Linear(12 + 8, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, stride=2)
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.ones_(self.head.bias)

    def forward(self, x_t: Tensor, t: Tensor, c2w: Tensor) -> Tensor:
        tau = (t.float() / self.num_train_timesteps)[:, None] * self.freqs
        cond = torch.cat([c2w[:, :3, :4].reshape(-1, 12).float(), tau.sin(), tau.cos()], 1)
        h = F.silu(self.conv1(x_t.float()) + self.cond(cond)[:, :, None, None])
        h = F.silu(self.conv2(h))
        return self.head(h.mean(dim=(2, 3)))[:, 0]


class SSD:
    """SSD's gradient with its learned coefficient(s) μ (and, if so configured, a learned
    baseline network); state passed explicitly, gsplat-style. Implements
    :class:`sdlib.distill.estimator.Estimator`.

    Args:
        config: the configuration.
        event_shape: ``(C, h, w)`` of one latent.
        device, dtype: of the coefficients (and the baseline network).
        priors: the loaded priors (the depth and normal baselines decode ``x_t`` with the
            diffusion prior's VAE and run the depth model); None for :meth:`gradient` alone.
        num_train_timesteps: ``T`` of the prior (for μ(t) and the learned baseline).

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
        priors: Priors | None = None,
        num_train_timesteps: int = 1000,
    ) -> None:
        self.config = config
        self.priors = priors
        self.binned: BinnedCoefficient | None = None
        if config.coefficient_update == "binned":
            init = (1.0, 0.0) if config.with_constant else (float(config.coefficient.init),)
            self.binned = BinnedCoefficient(config.binned, init, channels=int(event_shape[0]),
                                            num_train_timesteps=num_train_timesteps,
                                            device=device)
            self.coefficient: Any = self.binned
        else:
            cls = LearnedCoefficient if config.coefficient_update == "adam" else EMACoefficient
            self.coefficient = cls(config.coefficient, tuple(event_shape), device=device,
                                   dtype=dtype)
        self.network: BaselineNetwork | None = None
        if config.baseline == "learned":
            self.network = BaselineNetwork(int(event_shape[0]), config.learned.hidden,
                                           num_train_timesteps).to(device)
            self.network_optimizer = torch.optim.Adam(self.network.parameters(),
                                                      lr=config.learned.lr)

    # ------------------------------------------------------------------ construction
    @classmethod
    def needs_depth(cls, config: Any) -> bool:
        """The depth and normal baselines need a depth model (``config``: a TrainConfig)."""
        return config.ssd.baseline in ("depth", "normal")

    @classmethod
    def build(cls, config: Any, priors: Priors) -> SSD:
        """From a :class:`sdlib.train.TrainConfig` (its ``ssd`` field) and the loaded priors."""
        return cls(config.ssd, priors.latent_shape, device=priors.device, priors=priors,
                   num_train_timesteps=priors.prior.num_train_timesteps)

    def compile(self) -> None:
        """Compiles what φ runs through (the VAE decoder, the depth model); CUDA only."""
        if self.config.baseline not in ("depth", "normal") or self.priors is None:
            return
        from sdlib import accelerate

        if self.config.decoder == "vae":
            accelerate.compile_decoder(self.priors.prior)
        accelerate.compile_depth(self.priors.depth)

    @property
    def needs_normals(self) -> bool:
        """Whether training renders must carry normals (the normal baseline)."""
        return self.config.baseline == "normal"

    @property
    def mu(self) -> Tensor:
        """The current coefficient μ (shape by ``config.coefficient.reduce``; for μ(t), the
        table ``[n_bins, G, K]``)."""
        return self.binned.table if self.binned is not None else self.coefficient.mu

    # ------------------------------------------------------------------ the baseline
    def baseline(self, draw: Draw) -> Baseline:
        """The baseline ``φ`` for this batch (a function of ``x_t`` for fixed θ, c, t)."""
        kind = self.config.baseline
        if kind == "constant":
            return constant_baseline
        if kind == "learned":
            assert self.network is not None
            net, t, c2w = self.network, draw.t, draw.cameras.c2w
            return lambda x_t: net(x_t, t, c2w)
        if self.priors is None or self.priors.depth is None:
            raise ValueError(f"SSD baseline={kind!r} needs the priors (a depth model); build SSD "
                             "with SSD.build(config, priors)")
        prior, depth_model = self.priors.prior, self.priors.depth
        decode = (prior.decode_latents_linear if self.config.decoder == "linear"
                  else prior.decode_latents)
        out = draw.render
        if kind == "depth":
            return depth_baseline(decode, depth_model, out.depth, out.opacity,
                                  self.config.mask_threshold)
        if out.normals is None:  # zeros would make φ ≡ 1: SDS, silently
            raise ValueError("SSD baseline='normal' needs rendered normals, and this render has "
                             "none: render with RenderConfig.compute_normals=True (the trainer "
                             "does for its own normal-baseline SSD; for another estimator's "
                             "renders use Trainer.render(cameras, normals=True))")
        normals = out.normals
        return normal_baseline(
            decode, lambda img: normals_from_inverse_depth(depth_model(img)),
            camera_normals(normals, draw.cameras.c2w), out.opacity, self.config.mask_threshold,
        )

    # ------------------------------------------------------------------ estimator interface
    def control_variates(self, draw: Draw, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """The control variates ``[K, B, C, h, w]`` and ``φ(x_t)`` ``[B]``.

        ``K = 1`` (``h``), or 2 with ``with_constant`` (``ε``, then ``h``).
        """
        sigma = draw.sigma.to(draw.x_t.dtype)
        h, phi = stein_control_variate(self.baseline(draw), draw.x_t, draw.eps, sigma,
                                       create_graph=create_graph,
                                       grad_scale=self.config.grad_scale)
        hs = torch.stack([draw.eps, h]) if self.config.with_constant else h[None]
        return hs, phi

    def control(self, draw: Draw) -> Estimate:
        """``Σ_k μ_k ⊙ h_k`` with the coefficients *before* this batch's update."""
        learned = self.network is not None
        hs, phi = self.control_variates(draw, create_graph=learned)
        hs_detached = hs.detach()
        if self.binned is not None:
            control = self.binned.apply(draw.t, hs_detached)
            mu_mean = self.binned.mu(draw.t).mean()
        else:
            mu = self.coefficient.mu.clone()  # cloned: Adam updates in place
            control = mu * hs_detached[0]
            mu_mean = mu.mean()
        diagnostics = {"phi_mean": phi.detach().mean(), "mu_mean": mu_mean.detach(),
                       "h_norm": hs_detached[-1].flatten(1).norm(dim=1).mean()}
        cache = {"hs": hs_detached, "hs_graph": hs if learned else None}
        return Estimate(control=control.detach(), diagnostics=diagnostics, cache=cache)

    def update(self, draw: Draw, estimate: Estimate) -> dict[str, Any]:
        """μ (and ψ) learn the second moment ``||ω (ε̂ − Σ μ h)||²`` from this batch."""
        w = draw.weight.reshape(-1, *([1] * (draw.eps_pred.dim() - 1))).to(draw.eps_pred.dtype)
        f = w * draw.eps_pred.detach()
        info: dict[str, Any] = {}
        if self.network is not None:
            hs = estimate.cache["hs_graph"]
            if self.binned is not None:
                control = self.binned.apply(draw.t, hs)
            else:
                control = self.coefficient.mu * hs[0]
            with torch.enable_grad():
                loss = (f - w * control).pow(2).flatten(1).sum(1).mean()
                self.network_optimizer.zero_grad(set_to_none=True)
                loss.backward()
            self.network_optimizer.step()
            info["baseline_loss"] = loss.detach()
        hs = estimate.cache["hs"]
        if self.binned is not None:
            self.binned.update(draw.t, f, w[None] * hs)
        else:
            self.coefficient.update(f, w * hs[0])
        return info

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"coefficient": self.coefficient.state_dict()}
        if self.network is not None:
            state["network"] = self.network.state_dict()
            state["network_optimizer"] = self.network_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coefficient.load_state_dict(state["coefficient"])
        if self.network is not None:
            self.network.load_state_dict(state["network"])
            self.network_optimizer.load_state_dict(state["network_optimizer"])

    # ------------------------------------------------------------------ functional form
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
        """The SSD gradient on ``x`` for a given baseline, then (if ``update``) one update of μ.

        The single-control-variate form (``coefficient_update`` "adam" or "ema"), without the
        :class:`Draw` machinery.

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
        if self.binned is not None:
            raise ValueError("SSD.gradient is the single-coefficient form; with "
                             "coefficient_update='binned' use control()/update() with a Draw")
        h, phi_value = stein_control_variate(phi, x_t, eps, sigma,
                                             grad_scale=self.config.grad_scale)
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
